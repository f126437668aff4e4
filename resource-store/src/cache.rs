//! The worker's cache of local copies: `<root>/<contentHash>` entries, per-entry `flock` locks, usage
//! times, eviction and cleaning.
//!
//! Layout under the root (Toil's layout plus two hidden folders Toil ignores):
//! - `<contentHash>/`: an installed resource, never modified in place;
//! - `<contentHash>-resource-XXXXXX/`: a download in progress (or a dead one, swept on next use);
//! - `.locks/<contentHash>.lock`: the entry's lock file. An installer holds it exclusively; a user
//!   of the entry holds it shared for as long as it uses the entry. Its mtime is the last use.
//!   Lock files are never deleted while the root exists: a waiter may hold the old file open.
//! - `.meta/<contentHash>.json`: what the entry is (kind, name, size).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use resource_core::{ContentHash, ResourceKind};

use crate::error::{Result, StoreError};

/// Marks the temporary directories of this tool: `<contentHash>-resource-XXXXXX`.
pub const TEMP_MARKER: &str = "-resource-";
const LOCK_DIR: &str = ".locks";
const META_DIR: &str = ".meta";
const LONGEST_LOCK_POLL: Duration = Duration::from_millis(50);

/// Why a lock is taken: using or installing an entry counts as a use; probing does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockMode {
    Use,
    Install,
    Probe,
}

/// A held lock on a cache entry; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct EntryLock {
    // Closing the file releases the flock.
    _file: File,
}

/// What is recorded about an installed entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryMeta {
    /// `file`, `dir` or `venv`.
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// Bytes of content installed.
    pub size: u64,
}

/// An installed entry, as `resource cache ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    /// The entry's content hash.
    pub content_hash: ContentHash,
    /// `file`, `dir` or `venv`, when recorded.
    pub kind: Option<String>,
    /// The resource's name, when recorded.
    pub name: Option<String>,
    /// Bytes of content.
    pub size: u64,
    /// Last use, in seconds since the Unix epoch.
    pub last_used: u64,
    /// Whether a process holds the entry's lock right now.
    pub in_use: bool,
    /// Last use with full precision, for ordering.
    #[serde(skip)]
    last_used_precise: Duration,
}

/// What [`Cache::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// Entries removed, least recently used first.
    pub evicted: Vec<ContentHash>,
    /// Entries that would have been evicted but are in use.
    pub kept_in_use: Vec<ContentHash>,
    /// Bytes of content left.
    pub remaining_bytes: u64,
    /// Temporary directories of dead downloads removed.
    pub swept_temporaries: usize,
}

/// What [`Cache::clean`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanReport {
    /// Entries removed.
    pub removed: usize,
    /// Entries kept because a process uses them.
    pub kept_in_use: Vec<ContentHash>,
    /// Whether the root itself was removed.
    pub removed_root: bool,
}

/// The per-user cache directory, by the XDG base directory rule: `$XDG_CACHE_HOME`, else
/// `$HOME/.cache`; `None` when neither is set. The caller passes the variables' values (the
/// library never reads the environment); an empty value counts as unset.
pub fn user_cache_dir(xdg_cache_home: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    let set = |value: &&Path| !value.as_os_str().is_empty();
    match (xdg_cache_home.filter(set), home.filter(set)) {
        (Some(cache), _) => Some(cache.to_path_buf()),
        (None, Some(home)) => Some(home.join(".cache")),
        (None, None) => None,
    }
}

/// The root of local copies when none is given (and `JTRES_ROOT` is unset): `resource` in the
/// per-user cache directory ([`user_cache_dir`]).
///
/// ```
/// use std::path::Path;
/// use resource_store::cache::{default_root, user_cache_dir};
///
/// let home = Some(Path::new("/home/me"));
/// let dir = user_cache_dir(None, home).ok_or("no cache directory")?;
/// assert_eq!(default_root(&dir), Path::new("/home/me/.cache/resource"));
/// let dir = user_cache_dir(Some(Path::new("/tmp/c")), home).ok_or("no cache directory")?;
/// assert_eq!(default_root(&dir), Path::new("/tmp/c/resource"));
/// assert_eq!(user_cache_dir(Some(Path::new("")), None), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn default_root(user_cache_dir: &Path) -> PathBuf {
    user_cache_dir.join("resource")
}

/// The cache of local copies under one root.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache at `root` (created on first install).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of an entry.
    pub fn entry_dir(&self, hash: &ContentHash) -> PathBuf {
        self.root.join(hash.as_str())
    }

    fn lock_path(&self, hash: &ContentHash) -> PathBuf {
        self.root.join(LOCK_DIR).join(format!("{hash}.lock"))
    }

    fn meta_path(&self, hash: &ContentHash) -> PathBuf {
        self.root.join(META_DIR).join(format!("{hash}.json"))
    }

    /// Creates the root and its hidden folders.
    pub fn create(&self) -> Result<()> {
        for dir in [self.root.join(LOCK_DIR), self.root.join(META_DIR)] {
            fs::create_dir_all(&dir).map_err(|cause| StoreError::io(&dir, cause))?;
        }
        Ok(())
    }

    fn open_lock_file(&self, hash: &ContentHash) -> Result<File> {
        let path = self.lock_path(hash);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|cause| StoreError::io(&path, cause))
    }

    fn lock(&self, hash: &ContentHash, mode: LockMode, timeout: Duration) -> Result<EntryLock> {
        let file = self.open_lock_file(hash)?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let attempt = match mode {
                LockMode::Use => file.try_lock_shared(),
                LockMode::Install | LockMode::Probe => file.try_lock(),
            };
            match attempt {
                Ok(()) => {
                    // The lock file's mtime records the last use, for least-recently-used eviction.
                    if mode != LockMode::Probe {
                        let _ = file.set_modified(SystemTime::now());
                    }
                    return Ok(EntryLock { _file: file });
                }
                Err(fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(LONGEST_LOCK_POLL);
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::LockTimeout {
                        path: self.lock_path(hash),
                        waited: timeout,
                    });
                }
                Err(fs::TryLockError::Error(cause)) => {
                    return Err(StoreError::io(self.lock_path(hash), cause));
                }
            }
        }
    }

    /// Waits up to `timeout` for the exclusive lock of an entry (to install or remove it).
    pub fn lock_exclusive(&self, hash: &ContentHash, timeout: Duration) -> Result<EntryLock> {
        self.lock(hash, LockMode::Install, timeout)
    }

    /// Waits up to `timeout` for a shared lock of an entry (to use it).
    pub fn lock_shared(&self, hash: &ContentHash, timeout: Duration) -> Result<EntryLock> {
        self.lock(hash, LockMode::Use, timeout)
    }

    /// The exclusive lock of an entry if nobody holds its lock now.
    pub fn try_lock_exclusive(&self, hash: &ContentHash) -> Result<Option<EntryLock>> {
        match self.lock(hash, LockMode::Probe, Duration::ZERO) {
            Ok(lock) => Ok(Some(lock)),
            Err(StoreError::LockTimeout { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Records what an entry is.
    pub fn write_meta(
        &self,
        hash: &ContentHash,
        kind: ResourceKind,
        name: &str,
        size: u64,
    ) -> Result<()> {
        let meta = EntryMeta {
            kind: kind.short_name().to_owned(),
            name: name.to_owned(),
            size,
        };
        let path = self.meta_path(hash);
        let json = serde_json::to_vec(&meta).map_err(|cause| StoreError::RecordJson {
            record: path.display().to_string(),
            cause,
        })?;
        // Written beside and renamed, so a reader never sees half a record.
        let temp = path.with_extension(format!("json.{}", std::process::id()));
        fs::write(&temp, json).map_err(|cause| StoreError::io(&temp, cause))?;
        fs::rename(&temp, &path).map_err(|cause| StoreError::io(&path, cause))
    }

    fn read_meta(&self, hash: &ContentHash) -> Option<EntryMeta> {
        let bytes = fs::read(self.meta_path(hash)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A fresh temporary directory for downloading an entry, beside its final place.
    pub fn temp_dir(&self, hash: &ContentHash) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(&format!("{hash}{TEMP_MARKER}"))
            .tempdir_in(&self.root)
            .map_err(|cause| StoreError::io(&self.root, cause))
    }

    fn temporaries(&self) -> Result<Vec<(ContentHash, PathBuf)>> {
        let mut found = Vec::new();
        let listing = match fs::read_dir(&self.root) {
            Ok(listing) => listing,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(cause) => return Err(StoreError::io(&self.root, cause)),
        };
        for entry in listing {
            let entry = entry.map_err(|cause| StoreError::io(&self.root, cause))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((hash, _)) = name.split_once(TEMP_MARKER) else {
                continue;
            };
            if let Ok(hash) = hash.parse::<ContentHash>() {
                found.push((hash, entry.path()));
            }
        }
        Ok(found)
    }

    /// Removes the temporary directories of `hash`; the caller holds its exclusive lock, so they
    /// belong to dead processes.
    pub fn sweep_temporaries_of(&self, hash: &ContentHash) -> Result<usize> {
        let mut removed = 0;
        for (owner, path) in self.temporaries()? {
            if &owner == hash {
                remove_tree(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the temporary directories whose entry nobody holds locked: their downloads died.
    pub fn sweep_dead_temporaries(&self) -> Result<usize> {
        let mut removed = 0;
        for (hash, path) in self.temporaries()? {
            if let Some(_lock) = self.try_lock_exclusive(&hash)? {
                remove_tree(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The installed entries, least recently used first.
    pub fn entries(&self) -> Result<Vec<CacheEntry>> {
        let mut entries = Vec::new();
        let listing = match fs::read_dir(&self.root) {
            Ok(listing) => listing,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(entries),
            Err(cause) => return Err(StoreError::io(&self.root, cause)),
        };
        for entry in listing {
            let entry = entry.map_err(|cause| StoreError::io(&self.root, cause))?;
            let Some(Ok(hash)) = entry.file_name().to_str().map(str::parse::<ContentHash>) else {
                continue;
            };
            let meta = self.read_meta(&hash);
            let size = match &meta {
                Some(meta) => meta.size,
                None => tree_size(&entry.path()),
            };
            let last_used = fs::metadata(self.lock_path(&hash))
                .and_then(|meta| meta.modified())
                .or_else(|_| entry.metadata().and_then(|meta| meta.modified()))
                .ok()
                .and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok())
                .unwrap_or_default();
            let in_use = self.try_lock_exclusive(&hash)?.is_none();
            entries.push(CacheEntry {
                content_hash: hash,
                kind: meta.as_ref().map(|meta| meta.kind.clone()),
                name: meta.map(|meta| meta.name),
                size,
                last_used: last_used.as_secs(),
                in_use,
                last_used_precise: last_used,
            });
        }
        entries.sort_by(|a, b| {
            (a.last_used_precise, &a.content_hash).cmp(&(b.last_used_precise, &b.content_hash))
        });
        Ok(entries)
    }

    /// Removes an entry if nobody uses it: renamed away first, so it vanishes atomically.
    fn remove_entry_if_unused(&self, hash: &ContentHash) -> Result<bool> {
        let Some(_lock) = self.try_lock_exclusive(hash)? else {
            return Ok(false);
        };
        let dir = self.entry_dir(hash);
        let doomed = self.temp_dir(hash)?.keep();
        let _ = fs::remove_dir(&doomed);
        match fs::rename(&dir, &doomed) {
            Ok(()) => remove_tree(&doomed)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(cause) => return Err(StoreError::io(&dir, cause)),
        }
        let _ = fs::remove_file(self.meta_path(hash));
        Ok(true)
    }

    /// Evicts least recently used entries until the content left is at most `max_bytes`, never
    /// touching an entry in use.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport> {
        let mut report = GcReport {
            swept_temporaries: self.sweep_dead_temporaries()?,
            ..GcReport::default()
        };
        let entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|entry| entry.size).sum();
        for entry in entries {
            if total <= max_bytes {
                break;
            }
            if self.remove_entry_if_unused(&entry.content_hash)? {
                total -= entry.size;
                report.evicted.push(entry.content_hash);
            } else {
                report.kept_in_use.push(entry.content_hash);
            }
        }
        report.remaining_bytes = total;
        Ok(report)
    }

    /// Removes every entry nobody uses, and the root itself when nothing is left in use
    /// (Toil's `cleanSystem`, without pulling an entry from under a running user).
    pub fn clean(&self) -> Result<CleanReport> {
        let mut report = CleanReport::default();
        if !self.root.exists() {
            return Ok(report);
        }
        self.sweep_dead_temporaries()?;
        for entry in self.entries()? {
            if self.remove_entry_if_unused(&entry.content_hash)? {
                report.removed += 1;
            } else {
                report.kept_in_use.push(entry.content_hash);
            }
        }
        if report.kept_in_use.is_empty() {
            remove_tree(&self.root)?;
            report.removed_root = true;
        }
        Ok(report)
    }
}

fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(cause) => Err(StoreError::io(path, cause)),
    }
}

/// The bytes of regular files under `path` (for entries installed without a record).
fn tree_size(path: &Path) -> u64 {
    walk_size(path).unwrap_or(0)
}

fn walk_size(path: &Path) -> std::io::Result<u64> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(if meta.is_file() { meta.len() } else { 0 });
    }
    let mut total = 0;
    for entry in fs::read_dir(path)? {
        total += walk_size(&entry?.path())?;
    }
    Ok(total)
}
