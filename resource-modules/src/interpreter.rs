//! Facts about a Python interpreter, asked of the interpreter itself once and then cached.
//!
//! [`query_interpreter`] runs the interpreter with a small script (`-c`) that imports only the
//! standard library and prints JSON: prefixes, version, `sysconfig` paths, `sys.path`, the names
//! of built-in and standard-library modules, and the import suffixes. The answer, together with
//! the editable-install finders found in its site directories and the stamps (mtime, size, inode)
//! of every file it depends on, is an [`InterpreterSnapshot`].
//!
//! [`FactsCache`] keeps snapshots in memory and, given a directory, on disk. A cached snapshot is
//! used only while every stamp still matches: the interpreter, its real executable, `pyvenv.cfg`,
//! the site directories (whose mtime changes when a `.pth` file comes or goes) and each `.pth` and
//! finder file. So a warm lookup costs a handful of `stat` calls and never starts the interpreter.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::env::InterpreterChoice;
use crate::scan::pth::{self, EditableFinder};

/// How long the interpreter may take to answer before it is killed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The version of the on-disk cache format; older files are ignored.
const CACHE_FORMAT: u32 = 1;

/// The script the interpreter runs. It drops the current directory from `sys.path` before
/// importing anything, so no module of the user's can be picked up, and imports only the
/// standard library.
const QUERY_SCRIPT: &str = r#"
import sys
if sys.path and sys.path[0] == '' and not getattr(sys.flags, 'safe_path', False):
    del sys.path[0]
import json, os, site, sysconfig
import importlib.machinery as machinery
paths = sysconfig.get_paths()
user_site = None
if getattr(site, 'ENABLE_USER_SITE', False):
    user_site = site.getusersitepackages()
try:
    site_packages = site.getsitepackages()
except AttributeError:
    site_packages = []
out = {
    'executable': sys.executable,
    'baseExecutable': getattr(sys, '_base_executable', None),
    'prefix': sys.prefix,
    'basePrefix': getattr(sys, 'base_prefix', sys.prefix),
    'realPrefix': getattr(sys, 'real_prefix', None),
    'version': list(sys.version_info[:3]),
    'implementation': sys.implementation.name,
    'cacheTag': sys.implementation.cache_tag,
    'purelib': paths.get('purelib'),
    'platlib': paths.get('platlib'),
    'stdlib': paths.get('stdlib'),
    'sitePackages': list(site_packages),
    'userSite': user_site,
    'sysPath': list(sys.path),
    'safePath': bool(getattr(sys.flags, 'safe_path', False)),
    'builtinModuleNames': sorted(sys.builtin_module_names),
    'stdlibModuleNames': sorted(getattr(sys, 'stdlib_module_names', ())),
    'extensionSuffixes': list(machinery.EXTENSION_SUFFIXES),
    'sourceSuffixes': list(machinery.SOURCE_SUFFIXES),
    'bytecodeSuffixes': list(machinery.BYTECODE_SUFFIXES),
}
sys.stdout.write(json.dumps(out))
"#;

/// Why the interpreter could not be asked, or its answer not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterpreterError {
    /// The interpreter could not be started.
    #[error("cannot start the Python interpreter {}", .python.display())]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The interpreter did not answer in time and was killed.
    #[error("the Python interpreter {} did not answer within {seconds} s", .python.display())]
    TimedOut {
        /// The interpreter.
        python: PathBuf,
        /// The time it was given.
        seconds: u64,
    },
    /// The interpreter exited with an error.
    #[error("the Python interpreter {} failed ({status}): {stderr}", .python.display())]
    Failed {
        /// The interpreter.
        python: PathBuf,
        /// How it exited.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The interpreter printed something that is not the expected JSON.
    #[error("the Python interpreter {} gave an answer that cannot be read: {excerpt:?}", .python.display())]
    BadOutput {
        /// The interpreter.
        python: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
        /// The start of what it printed.
        excerpt: String,
    },
    /// The interpreter is one this crate cannot work with.
    #[error("the Python interpreter {} is not supported: {reason}", .python.display())]
    Unsupported {
        /// The interpreter.
        python: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file the interpreter depends on (`pyvenv.cfg`) could not be read.
    #[error("cannot read {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
}

/// A Python version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "[u32; 3]", into = "[u32; 3]")]
pub struct PythonVersion {
    /// Major version (3).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro version.
    pub micro: u32,
}

impl From<[u32; 3]> for PythonVersion {
    fn from([major, minor, micro]: [u32; 3]) -> Self {
        Self {
            major,
            minor,
            micro,
        }
    }
}

impl From<PythonVersion> for [u32; 3] {
    fn from(v: PythonVersion) -> Self {
        [v.major, v.minor, v.micro]
    }
}

impl PythonVersion {
    /// The versioned command name, Toil's `exactPython`: `python3.11`.
    pub fn exact_python(&self) -> String {
        format!("python{}.{}", self.major, self.minor)
    }
}

impl std::fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// What the interpreter says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterpreterFacts {
    /// `sys.executable`.
    pub executable: PathBuf,
    /// `sys._base_executable`, where the interpreter has it.
    pub base_executable: Option<PathBuf>,
    /// `sys.prefix`.
    pub prefix: PathBuf,
    /// `sys.base_prefix`.
    pub base_prefix: PathBuf,
    /// `sys.real_prefix` (set by the old `virtualenv` tool).
    pub real_prefix: Option<PathBuf>,
    /// `sys.version_info[:3]`.
    pub version: PythonVersion,
    /// `sys.implementation.name`, such as `cpython`.
    pub implementation: String,
    /// `sys.implementation.cache_tag`, such as `cpython-311`.
    pub cache_tag: Option<String>,
    /// `sysconfig.get_paths()['purelib']`.
    pub purelib: Option<PathBuf>,
    /// `sysconfig.get_paths()['platlib']`.
    pub platlib: Option<PathBuf>,
    /// `sysconfig.get_paths()['stdlib']`.
    pub stdlib: Option<PathBuf>,
    /// `site.getsitepackages()`.
    pub site_packages: Vec<PathBuf>,
    /// `site.getusersitepackages()` when the user site is enabled.
    pub user_site: Option<PathBuf>,
    /// `sys.path` as a script run by this interpreter sees it, without the script's own directory
    /// (or the current directory for `-m`), which comes first at run time.
    pub sys_path: Vec<PathBuf>,
    /// Whether `sys.flags.safe_path` is set (then nothing is put in front of `sys.path`).
    pub safe_path: bool,
    /// `sys.builtin_module_names`.
    pub builtin_module_names: BTreeSet<String>,
    /// `sys.stdlib_module_names` (empty before Python 3.10).
    pub stdlib_module_names: BTreeSet<String>,
    /// `importlib.machinery.EXTENSION_SUFFIXES`.
    pub extension_suffixes: Vec<String>,
    /// `importlib.machinery.SOURCE_SUFFIXES`.
    pub source_suffixes: Vec<String>,
    /// `importlib.machinery.BYTECODE_SUFFIXES`.
    pub bytecode_suffixes: Vec<String>,
}

impl InterpreterFacts {
    /// Every import suffix in the order Python's path finder tries them: extension modules,
    /// source, bytecode.
    pub fn import_suffixes(&self) -> impl Iterator<Item = &str> {
        self.extension_suffixes
            .iter()
            .chain(&self.source_suffixes)
            .chain(&self.bytecode_suffixes)
            .map(String::as_str)
    }

    /// The site directories whose `.pth` files shape `sys.path`: `site.getsitepackages()`, the user
    /// site, `purelib` and `platlib`, without duplicates, in that order.
    pub fn site_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let candidates = self
            .site_packages
            .iter()
            .chain(&self.user_site)
            .chain(&self.purelib)
            .chain(&self.platlib);
        for dir in candidates {
            if !dirs.contains(dir) {
                dirs.push(dir.clone());
            }
        }
        dirs
    }

    /// The `site-packages` directories that packages are installed into (`purelib`, then
    /// `platlib` if different) and that exist: what `resource module scan --python PY` scans.
    pub fn install_site_packages(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for dir in self.purelib.iter().chain(&self.platlib) {
            if dir.is_dir() && !dirs.contains(dir) {
                dirs.push(dir.clone());
            }
        }
        dirs
    }
}

/// The state of a file when a snapshot was taken; a change means the snapshot may be stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStamp {
    /// The file (followed through symlinks).
    pub path: PathBuf,
    /// `None` when the file did not exist (its appearance is a change too).
    pub state: Option<StampState>,
}

/// Modification time, size and identity of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StampState {
    /// Seconds of the modification time.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: i64,
    /// Size in bytes.
    pub size: u64,
    /// Inode number.
    pub ino: u64,
    /// Device number.
    pub dev: u64,
}

impl FileStamp {
    /// The current stamp of `path`.
    pub fn of(path: &Path) -> Self {
        let state = std::fs::metadata(path).ok().map(|meta| StampState {
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            size: meta.size(),
            ino: meta.ino(),
            dev: meta.dev(),
        });
        Self {
            path: path.to_path_buf(),
            state,
        }
    }

    /// Whether the file is still as stamped.
    pub fn is_current(&self) -> bool {
        Self::of(&self.path).state == self.state
    }
}

/// Everything discovery needs to know about one interpreter, so that it can work without
/// starting it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterpreterSnapshot {
    /// The interpreter as chosen.
    pub python: PathBuf,
    /// What it said about itself.
    pub facts: InterpreterFacts,
    /// The editable-install finders (`__editable___*_finder.py`) that its `.pth` files install;
    /// they resolve names that `sys.path` does not hold.
    pub editable_finders: Vec<EditableFinder>,
    /// The files whose change makes this snapshot stale.
    pub watched: Vec<FileStamp>,
}

impl InterpreterSnapshot {
    /// Whether every watched file is still as it was.
    pub fn is_current(&self) -> bool {
        self.watched.iter().all(FileStamp::is_current)
    }
}

/// Asks the interpreter (always starts it; no cache) and builds a snapshot.
pub fn query_interpreter(
    choice: &InterpreterChoice,
) -> Result<InterpreterSnapshot, InterpreterError> {
    query_interpreter_with_timeout(choice, QUERY_TIMEOUT)
}

/// [`query_interpreter`] with a given timeout.
pub fn query_interpreter_with_timeout(
    choice: &InterpreterChoice,
    timeout: Duration,
) -> Result<InterpreterSnapshot, InterpreterError> {
    let python = &choice.python;
    // Stamp before asking, so that a change while it runs makes the snapshot stale, not lost.
    let interpreter_stamp = FileStamp::of(python);
    let stdout = run_query(choice, timeout)?;
    let facts: InterpreterFacts =
        serde_json::from_slice(&stdout).map_err(|source| InterpreterError::BadOutput {
            python: python.clone(),
            source,
            excerpt: String::from_utf8_lossy(&stdout[..stdout.len().min(200)]).into_owned(),
        })?;
    if facts.version.major < 3 {
        return Err(InterpreterError::Unsupported {
            python: python.clone(),
            reason: format!("Python {} is older than Python 3", facts.version),
        });
    }
    let mut watched = vec![interpreter_stamp, FileStamp::of(&facts.executable)];
    watched.extend(facts.base_executable.iter().map(|p| FileStamp::of(p)));
    watched.push(FileStamp::of(&facts.prefix.join("pyvenv.cfg")));
    let mut editable_finders = Vec::new();
    for dir in facts.site_dirs() {
        watched.push(FileStamp::of(&dir));
        let found = pth::pth_files_with_finders(&dir);
        for (pth, finders) in found {
            watched.push(FileStamp::of(&pth));
            for finder in finders {
                watched.push(FileStamp::of(&finder.file));
                editable_finders.push(finder);
            }
        }
    }
    Ok(InterpreterSnapshot {
        python: python.clone(),
        facts,
        editable_finders,
        watched,
    })
}

fn run_query(choice: &InterpreterChoice, timeout: Duration) -> Result<Vec<u8>, InterpreterError> {
    let python = &choice.python;
    let mut child = Command::new(python)
        .arg("-c")
        .arg(QUERY_SCRIPT)
        .env_clear()
        .envs(choice.env.vars())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| InterpreterError::Spawn {
            python: python.clone(),
            source,
        })?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                // Our own child; a failure to kill means it already ended.
                let _ = child.kill();
                let _ = child.wait();
                return Err(InterpreterError::TimedOut {
                    python: python.clone(),
                    seconds: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(source) => {
                return Err(InterpreterError::Spawn {
                    python: python.clone(),
                    source,
                });
            }
        }
    };
    let stdout = stdout.map(join_drain).unwrap_or_default();
    let stderr = stderr.map(join_drain).unwrap_or_default();
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr);
        let tail: String = text.trim_end().chars().rev().take(2000).collect();
        return Err(InterpreterError::Failed {
            python: python.clone(),
            status: status.to_string(),
            stderr: tail.chars().rev().collect(),
        });
    }
    Ok(stdout)
}

fn drain<R: Read + Send + 'static>(mut reader: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error leaves what was read; the JSON check reports a short answer.
        let _ = reader.read_to_end(&mut buf);
        buf
    })
}

fn join_drain(handle: std::thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

/// Where a snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SnapshotSource {
    /// This process's cache.
    Memory,
    /// The on-disk cache.
    Disk,
    /// The interpreter was asked.
    Interpreter,
}

/// A snapshot and how it was found.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The snapshot.
    pub snapshot: Arc<InterpreterSnapshot>,
    /// Where it came from.
    pub source: SnapshotSource,
    /// A problem with the on-disk cache that did not stop the lookup (unreadable or unwritable).
    pub cache_problem: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheFile {
    format: u32,
    key: String,
    snapshot: InterpreterSnapshot,
}

/// Snapshots cached per interpreter and environment, in memory and optionally on disk.
///
/// Cloning shares the cache.
#[derive(Debug, Clone, Default)]
pub struct FactsCache {
    inner: Arc<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, Arc<InterpreterSnapshot>>>,
}

impl FactsCache {
    /// A cache held in this process only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A cache in this process backed by JSON files in `dir` (created when first written).
    pub fn with_dir(dir: &Path) -> Self {
        Self {
            inner: Arc::new(CacheInner {
                dir: Some(dir.to_path_buf()),
                memory: Mutex::default(),
            }),
        }
    }

    /// The cache in the per-user cache directory `user_cache_dir` (such as `~/.cache`, given by
    /// the caller): JSON files in its `resource-modules` directory.
    pub fn in_user_cache(user_cache_dir: &Path) -> Self {
        Self::with_dir(&user_cache_dir.join("resource-modules"))
    }

    /// The on-disk cache directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }

    fn key(choice: &InterpreterChoice) -> String {
        format!(
            "{}\0{}",
            choice.python.to_string_lossy(),
            choice.env.fingerprint()
        )
    }

    fn file_for(&self, key: &str) -> Option<PathBuf> {
        let hash = resource_core::PathHash::of_bytes(key.as_bytes());
        self.dir()
            .map(|dir| dir.join(format!("python-{}.json", hash.as_str())))
    }

    /// The snapshot for `choice`: from memory or disk while still current, else asked of the
    /// interpreter (and then cached).
    pub fn lookup(&self, choice: &InterpreterChoice) -> Result<Lookup, InterpreterError> {
        let key = Self::key(choice);
        let remembered = self
            .inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(snapshot) = remembered
            && snapshot.is_current()
        {
            return Ok(Lookup {
                snapshot,
                source: SnapshotSource::Memory,
                cache_problem: None,
            });
        }
        let file = self.file_for(&key);
        let mut cache_problem = None;
        if let Some(file) = &file {
            match read_cache_file(file, &key) {
                Ok(Some(snapshot)) if snapshot.is_current() => {
                    let snapshot = Arc::new(snapshot);
                    self.remember(key, &snapshot);
                    return Ok(Lookup {
                        snapshot,
                        source: SnapshotSource::Disk,
                        cache_problem: None,
                    });
                }
                Ok(_) => {}
                Err(problem) => cache_problem = Some(problem),
            }
        }
        let snapshot = Arc::new(query_interpreter(choice)?);
        if let Some(file) = &file
            && let Err(problem) = write_cache_file(file, &key, &snapshot)
        {
            cache_problem = Some(problem);
        }
        self.remember(key, &snapshot);
        Ok(Lookup {
            snapshot,
            source: SnapshotSource::Interpreter,
            cache_problem,
        })
    }

    fn remember(&self, key: String, snapshot: &Arc<InterpreterSnapshot>) {
        self.inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::clone(snapshot));
    }

    /// Forgets the snapshots held in memory (the on-disk files stay).
    pub fn clear_memory(&self) {
        self.inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

fn read_cache_file(file: &Path, key: &str) -> Result<Option<InterpreterSnapshot>, String> {
    let bytes = match fs_err::read(file) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.to_string()),
    };
    // A file of another format or another key (a hash collision) is simply not a hit.
    match serde_json::from_slice::<CacheFile>(&bytes) {
        Ok(cached) if cached.format == CACHE_FORMAT && cached.key == key => {
            Ok(Some(cached.snapshot))
        }
        Ok(_) => Ok(None),
        Err(err) => Err(format!(
            "ignoring the unreadable cache file {}: {err}",
            file.display()
        )),
    }
}

fn write_cache_file(file: &Path, key: &str, snapshot: &InterpreterSnapshot) -> Result<(), String> {
    let cached = CacheFile {
        format: CACHE_FORMAT,
        key: key.to_owned(),
        snapshot: snapshot.clone(),
    };
    let bytes = serde_json::to_vec(&cached).map_err(|err| err.to_string())?;
    let write = || -> std::io::Result<()> {
        if let Some(dir) = file.parent() {
            fs_err::create_dir_all(dir)?;
        }
        // Unique per process and thread, so concurrent writers never share a temporary file.
        let thread = format!("{:?}", std::thread::current().id());
        let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
        let tmp = file.with_extension(format!("tmp.{}.{thread}", std::process::id()));
        fs_err::write(&tmp, &bytes)?;
        fs_err::rename(&tmp, file)
    };
    write().map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_notice_changes() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("f");
        let missing = FileStamp::of(&file);
        assert!(missing.state.is_none() && missing.is_current());
        fs_err::write(&file, "a")?;
        assert!(!missing.is_current());
        let stamp = FileStamp::of(&file);
        assert!(stamp.is_current());
        fs_err::write(&file, "ab")?;
        assert!(!stamp.is_current());
        Ok(())
    }

    #[test]
    fn version_forms() {
        let v = PythonVersion::from([3, 11, 7]);
        assert_eq!(v.exact_python(), "python3.11");
        assert_eq!(v.to_string(), "3.11.7");
    }
}
