//! Module discovery: Toil's `ModuleDescriptor.forModule` and `_resourcePath` /
//! `_getResourceClass`, answered from files and a cached interpreter snapshot, without running
//! any of the user's code.
//!
//! The three ways Toil meets a user module ([`ModuleSource`]):
//! - a script run as `python dir/foo.py`: name `foo`, `dirPath` = `dir` made absolute. It must not
//!   resolve to another module once `dir` is off the search path (a built-in, the standard
//!   library such as `collections`, anything on `sys.path` or in an editable finder), and `dir`
//!   must not be a package (`__init__.py`/`.pyc`/`.pyo`) unless it ships as part of a virtualenv.
//! - a module run as `python -m a.b.c`: found on the search path (the working directory first)
//!   by walking packages in Rust, never running an `__init__`; each trailing directory of the
//!   file must equal its package name, and `dirPath` is what remains. A top-level `-m foo` has no
//!   package, so Toil treats it as a script (with the script checks). A package runs its
//!   `__main__`, so its name is `a.b.c.__main__`.
//! - a module imported as `a.b.c` from a given file: the same trailing-directory rule, with
//!   `__init__` stripped for a package.

use std::path::{Path, PathBuf};

use resource_core::registry::shell_quote;
use resource_core::{ModuleDescriptor, ResourceKind};
use serde::Serialize;

use crate::env::{InterpreterChoice, PythonEnv};
use crate::interpreter::{FactsCache, InterpreterError, InterpreterSnapshot, Lookup};
use crate::resolve::{self, Spec, is_identifier};
use crate::venv::{self, VirtualEnvInfo};
use resource_core::paths::normalize_join;

pub use resource_core::module::DEFAULT_ENGINE_PREFIX;

/// The files whose presence makes a directory a package, as Toil checks them.
const INIT_FILES: [&str; 3] = ["__init__.py", "__init__.pyc", "__init__.pyo"];

/// How the user's module was met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    /// `python PATH`: a script file.
    Script(PathBuf),
    /// `python -m NAME`, run in the working directory of the [`DiscoveryContext`].
    Main(String),
    /// Imported as `name` from `file`. The name `__main__` means a script, as in Toil's
    /// `forModule('__main__')` for a program run without a package.
    Imported {
        /// The module's file (`__file__`).
        file: PathBuf,
        /// Its dotted name.
        name: String,
    },
}

/// Where discovery runs: the working directory (relative paths, and the first search-path entry
/// for `-m`) and the engine's module prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryContext {
    /// The working directory.
    pub cwd: PathBuf,
    /// Modules whose name starts with this are the engine's and never shipped (`toil.`).
    pub engine_prefix: String,
}

impl DiscoveryContext {
    /// A context in `cwd` with the default engine prefix `toil.`.
    pub fn new(cwd: &Path) -> Self {
        Self {
            cwd: cwd.to_path_buf(),
            engine_prefix: DEFAULT_ENGINE_PREFIX.to_owned(),
        }
    }
}

/// What a user module collides with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CollidesWith {
    /// A module built into the interpreter (`sys.builtin_module_names`).
    BuiltIn,
    /// A standard-library name (`sys.stdlib_module_names`) not found as a file.
    StandardLibrary,
    /// A module, package or namespace portion found at this path.
    Path(PathBuf),
}

impl std::fmt::Display for CollidesWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CollidesWith::BuiltIn => f.write_str("built into the interpreter"),
            CollidesWith::StandardLibrary => f.write_str("in the standard library"),
            CollidesWith::Path(path) => write!(f, "from '{}'", path.display()),
        }
    }
}

/// Why a module cannot be described or shipped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The file does not end in `.py` or `.pyc` (Toil's rule: a worker re-imports it by name).
    #[error("{}: The name of a user script/module must end in .py or .pyc.", .path.display())]
    NotPythonSource {
        /// The file.
        path: PathBuf,
    },
    /// The module file cannot be read.
    #[error("{}: cannot use it as a user module", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The module path is a directory or something else that is not a file.
    #[error("{}: a user module must be a file", .path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The script's name is not a Python identifier, so a worker could not import it.
    #[error("{}: {name:?} is not a valid Python module name, so a worker could not import it", .path.display())]
    NotImportable {
        /// The file.
        path: PathBuf,
        /// The name it would have.
        name: String,
    },
    /// The dotted name given is not a module name.
    #[error("{name:?} is not a dotted Python module name: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The file's trailing directories do not match the module's package names.
    #[error("{}: Incorrect path to package: module {name} expects directory {expected:?} where the path has {found:?}", .path.display())]
    IncorrectPackagePath {
        /// The module file.
        path: PathBuf,
        /// The dotted name.
        name: String,
        /// The package name expected.
        expected: String,
        /// The directory name found (empty when the path ran out).
        found: String,
    },
    /// The script's name resolves to another module once its directory is off the search path.
    #[error("{}: The user module '{name}' collides with module '{name}' {with}.", .path.display())]
    Collision {
        /// The user's file.
        path: PathBuf,
        /// The module name.
        name: String,
        /// What it collides with.
        with: CollidesWith,
    },
    /// A stand-alone script sits in a package directory.
    #[error(
        "module {module}: Toil does not support loading a user script from a package directory. \
         You may want to remove {init} from {} or invoke the user script as a module via: {hint}",
        .dir.display()
    )]
    ScriptInPackage {
        /// The script's module name.
        module: String,
        /// Its directory.
        dir: PathBuf,
        /// The `__init__` file found there.
        init: String,
        /// The command that runs it as a module instead.
        hint: String,
    },
    /// `-m NAME` found nothing.
    #[error("No module named '{missing}' (looking for '{name}' on {})", display_paths(.searched))]
    ModuleNotFound {
        /// The name asked for.
        name: String,
        /// The first part of it that was not found.
        missing: String,
        /// The search path.
        searched: Vec<PathBuf>,
    },
    /// `-m NAME` names a package without `__main__`.
    #[error("No module named '{name}.__main__'; '{name}' is a package ({}) and cannot be directly executed", display_paths(.locations))]
    PackageNotRunnable {
        /// The package.
        name: String,
        /// Its directories.
        locations: Vec<PathBuf>,
    },
    /// `dirPath` is not a directory, or is the root directory.
    #[error(
        "Bad directory path {} for module {name}: {reason}",
        .dir.display()
    )]
    BadDirectory {
        /// The directory.
        dir: PathBuf,
        /// The module.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The path to ship is neither a file nor a directory.
    #[error("{}: cannot ship module {name}: {reason}", .path.display())]
    NothingToShip {
        /// The path.
        path: PathBuf,
        /// The module.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The dotted name is invalid for a descriptor.
    #[error(transparent)]
    Descriptor(#[from] resource_core::module::DescriptorError),
    /// The interpreter could not be asked.
    #[error(transparent)]
    Interpreter(#[from] InterpreterError),
}

fn display_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!("[{}]", shown.join(", "))
}

/// What to ship for a module: Toil's `_resourcePath` and `_getResourceClass`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipPlan {
    /// The file or directory to ship.
    pub path: PathBuf,
    /// As which kind of resource.
    pub kind: ResourceKind,
    /// Whether the directory is the root package of a dotted name, so that archive entries must
    /// be named `<basename>/…` for `import a.b` to work on the worker. Toil decides this from
    /// `__init__.py` alone, which loses the package directory of a namespace package.
    pub package_root: bool,
}

/// Whether and how a module ships.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shipping {
    /// Ship it as planned.
    Ship(ShipPlan),
    /// It belongs to the engine (its name starts with the prefix) and is never shipped.
    EngineModule {
        /// The prefix it starts with.
        prefix: String,
    },
}

impl Shipping {
    /// The plan, if the module ships.
    pub fn plan(&self) -> Option<&ShipPlan> {
        match self {
            Shipping::Ship(plan) => Some(plan),
            Shipping::EngineModule { .. } => None,
        }
    }
}

/// The answer for one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Toil's module descriptor.
    pub descriptor: ModuleDescriptor,
    /// The module's file.
    pub file: PathBuf,
    /// What to ship.
    pub shipping: Shipping,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShipJson<'a> {
    path: &'a Path,
    kind: &'static str,
    toil_class: &'static str,
    package_root: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiscoveryJson<'a> {
    dir_path: &'a Path,
    name: &'a str,
    from_virtual_env: bool,
    file: &'a Path,
    ship: Option<ShipJson<'a>>,
    not_shipped: Option<String>,
}

impl Serialize for Discovery {
    /// `{"dirPath", "name", "fromVirtualEnv", "file", "ship": {"path", "kind", "toilClass",
    /// "packageRoot"} | null, "notShipped": reason | null}`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ship = self.shipping.plan().map(|plan| ShipJson {
            path: &plan.path,
            kind: plan.kind.short_name(),
            toil_class: plan.kind.toil_class(),
            package_root: plan.package_root,
        });
        let not_shipped = match &self.shipping {
            Shipping::Ship(_) => None,
            Shipping::EngineModule { prefix } => {
                Some(format!("engine module (name starts with {prefix:?})"))
            }
        };
        DiscoveryJson {
            dir_path: &self.descriptor.dir_path,
            name: &self.descriptor.name,
            from_virtual_env: self.descriptor.from_virtual_env,
            file: &self.file,
            ship,
            not_shipped,
        }
        .serialize(serializer)
    }
}

/// Discovery bound to an interpreter, its cache and a working directory.
#[derive(Debug, Clone)]
pub struct Discoverer {
    choice: InterpreterChoice,
    cache: FactsCache,
    context: DiscoveryContext,
}

impl Discoverer {
    /// Discovery with `choice`, caching its snapshot in `cache`, working in `cwd`.
    pub fn new(choice: InterpreterChoice, cache: FactsCache, cwd: &Path) -> Self {
        Self {
            choice,
            cache,
            context: DiscoveryContext::new(cwd),
        }
    }

    /// The same with another engine prefix (`toil.` by default).
    pub fn with_engine_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.context.engine_prefix);
        self
    }

    /// The interpreter's snapshot (cached while current).
    pub fn snapshot(&self) -> Result<Lookup, InterpreterError> {
        self.cache.lookup(&self.choice)
    }

    /// Describes a module and plans what to ship.
    pub fn discover(&self, source: &ModuleSource) -> Result<Discovery, DiscoveryError> {
        let lookup = self.snapshot()?;
        discover(source, &lookup.snapshot, &self.choice.env, &self.context)
    }

    /// Everything about the interpreter's virtualenv.
    pub fn virtual_env(&self) -> Result<VirtualEnvInfo, InterpreterError> {
        let lookup = self.snapshot()?;
        venv::virtual_env_info(&lookup.snapshot, &self.choice.env)
    }
}

/// Describes a module and plans what to ship, from a snapshot of the interpreter that runs it.
/// Touches only the file system; never starts the interpreter.
pub fn discover(
    source: &ModuleSource,
    snapshot: &InterpreterSnapshot,
    env: &PythonEnv,
    context: &DiscoveryContext,
) -> Result<Discovery, DiscoveryError> {
    let (file, name, dir_path) = match source {
        ModuleSource::Script(path) => {
            let file = normalize_join(&context.cwd, path);
            script(file, snapshot, context)?
        }
        ModuleSource::Imported { file, name } if name == "__main__" => {
            let file = normalize_join(&context.cwd, file);
            script(file, snapshot, context)?
        }
        ModuleSource::Imported { file, name } => {
            check_dotted_name(name)?;
            let file = normalize_join(&context.cwd, file);
            let stem = check_module_file(&file)?;
            let dir = imported_dir(&file, &stem, name)?;
            (file, name.clone(), dir)
        }
        ModuleSource::Main(name) => main_module(name, snapshot, context)?,
    };
    if dir_path.parent().is_none() {
        return Err(DiscoveryError::BadDirectory {
            dir: dir_path,
            name,
            reason: "scripts located in the root directory cannot be shipped",
        });
    }
    if !dir_path.is_dir() {
        return Err(DiscoveryError::BadDirectory {
            dir: dir_path,
            name,
            reason: "not a directory",
        });
    }
    let in_venv = !venv::venv_reasons(snapshot, env).is_empty();
    let from_virtual_env = in_venv && is_under(&dir_path, &snapshot.facts.prefix);
    let descriptor = ModuleDescriptor::new(dir_path, name, from_virtual_env)?;
    let shipping = ship_plan(
        &descriptor,
        &snapshot.facts.version.exact_python(),
        &context.engine_prefix,
    )?;
    Ok(Discovery {
        descriptor,
        file,
        shipping,
    })
}

/// The script branch: name from the file, collision check against the rest of the search path.
fn script(
    file: PathBuf,
    snapshot: &InterpreterSnapshot,
    context: &DiscoveryContext,
) -> Result<(PathBuf, String, PathBuf), DiscoveryError> {
    let stem = check_module_file(&file)?;
    if !is_identifier(&stem) {
        return Err(DiscoveryError::NotImportable {
            path: file,
            name: stem,
        });
    }
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    check_collision(&file, &stem, &dir, snapshot, context)?;
    Ok((file, stem, dir))
}

/// `-m NAME`: resolve without importing, then Toil's `__main__` branch.
fn main_module(
    name: &str,
    snapshot: &InterpreterSnapshot,
    context: &DiscoveryContext,
) -> Result<(PathBuf, String, PathBuf), DiscoveryError> {
    check_dotted_name(name)?;
    let facts = &snapshot.facts;
    let mut search_path = Vec::with_capacity(facts.sys_path.len() + 1);
    if !facts.safe_path {
        search_path.push(context.cwd.clone());
    }
    search_path.extend(absolute_sys_path(snapshot, context));
    let spec = resolve::resolve_dotted(name, &search_path, snapshot).map_err(|missing| {
        DiscoveryError::ModuleNotFound {
            name: name.to_owned(),
            missing,
            searched: search_path.clone(),
        }
    })?;
    let (file, run_name) = match spec {
        Spec::Module { file } => (file, name.to_owned()),
        package => {
            let locations = package.search_locations();
            let suffixes: Vec<&str> = facts.import_suffixes().collect();
            match resolve::find_in(
                "__main__",
                locations.iter().map(PathBuf::as_path),
                &suffixes,
            ) {
                Some(Spec::Module { file }) => (file, format!("{name}.__main__")),
                _ => {
                    return Err(DiscoveryError::PackageNotRunnable {
                        name: name.to_owned(),
                        locations,
                    });
                }
            }
        }
    };
    let stem = check_module_file(&file)?;
    match run_name.rsplit_once('.') {
        // `__package__` is empty: Toil takes the script branch.
        None => script(file, snapshot, context),
        Some((package, _)) => {
            let packages: Vec<&str> = package.split('.').collect();
            let dir = strip_packages(&file, &run_name, &packages)?;
            Ok((file, format!("{package}.{stem}"), dir))
        }
    }
}

fn check_dotted_name(name: &str) -> Result<(), DiscoveryError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.split('.').any(str::is_empty) {
        "it has an empty part"
    } else if !name.split('.').all(is_identifier) {
        "each part must be a Python identifier"
    } else {
        return Ok(());
    };
    Err(DiscoveryError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Toil's first check: `.py` or `.pyc`, then that it is a readable file. Returns the stem.
fn check_module_file(file: &Path) -> Result<String, DiscoveryError> {
    let stem = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".pyc").or_else(|| n.strip_suffix(".py")))
        .filter(|stem| !stem.is_empty() && !stem.starts_with('.'));
    let Some(stem) = stem else {
        return Err(DiscoveryError::NotPythonSource {
            path: file.to_path_buf(),
        });
    };
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_file() => Ok(stem.to_owned()),
        Ok(_) => Err(DiscoveryError::NotAFile {
            path: file.to_path_buf(),
        }),
        Err(source) => Err(DiscoveryError::Unreadable {
            path: file.to_path_buf(),
            source,
        }),
    }
}

/// Pops the file name, then one directory per package of `packages` (last first), each of which
/// must equal its package name; returns the directory that remains (`dirPath`). `name` is the
/// module's dotted name, for the error.
fn strip_packages(file: &Path, name: &str, packages: &[&str]) -> Result<PathBuf, DiscoveryError> {
    let mut dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    for package in packages.iter().rev() {
        let found = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if found != *package {
            return Err(incorrect_path(file, name, package, found));
        }
        dir.pop();
    }
    Ok(dir)
}

fn incorrect_path(file: &Path, name: &str, expected: &str, found: String) -> DiscoveryError {
    DiscoveryError::IncorrectPackagePath {
        path: file.to_path_buf(),
        name: name.to_owned(),
        expected: expected.to_owned(),
        found,
    }
}

/// Toil's imported-module branch: `__init__` stands for its package directory; otherwise the
/// file's stem must be the last part of the name. Then every package directory must match.
fn imported_dir(file: &Path, stem: &str, name: &str) -> Result<PathBuf, DiscoveryError> {
    let parts: Vec<&str> = name.split('.').collect();
    if stem == "__init__" {
        return strip_packages(file, name, &parts);
    }
    let (last, packages) = parts.split_last().unwrap_or((&name, &[]));
    if stem != *last {
        return Err(incorrect_path(file, name, last, stem.to_owned()));
    }
    strip_packages(file, name, packages)
}

/// The interpreter's `sys.path` (without the script's or working directory), relative entries
/// taken against the working directory.
fn absolute_sys_path<'a>(
    snapshot: &'a InterpreterSnapshot,
    context: &'a DiscoveryContext,
) -> impl Iterator<Item = PathBuf> + 'a {
    snapshot
        .facts
        .sys_path
        .iter()
        .map(|entry| normalize_join(&context.cwd, entry))
}

fn realpath(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Toil's `_check_conflict`: would `import name` find something once `dir` is off `sys.path`?
fn check_collision(
    file: &Path,
    name: &str,
    dir: &Path,
    snapshot: &InterpreterSnapshot,
    context: &DiscoveryContext,
) -> Result<(), DiscoveryError> {
    let facts = &snapshot.facts;
    let collision = |with| DiscoveryError::Collision {
        path: file.to_path_buf(),
        name: name.to_owned(),
        with,
    };
    if facts.builtin_module_names.contains(name) {
        return Err(collision(CollidesWith::BuiltIn));
    }
    let dir_real = realpath(dir);
    let entries: Vec<PathBuf> = absolute_sys_path(snapshot, context)
        .filter(|entry| realpath(entry) != dir_real)
        .collect();
    if let Ok(spec) = resolve::resolve_dotted(name, &entries, snapshot) {
        let found = match spec {
            Spec::Module { file } => file,
            Spec::Package { init, .. } => init,
            Spec::Namespace { portions } => portions.into_iter().next().unwrap_or_default(),
        };
        return Err(collision(CollidesWith::Path(found)));
    }
    if facts.stdlib_module_names.contains(name) {
        return Err(collision(CollidesWith::StandardLibrary));
    }
    Ok(())
}

/// Whether `path` lies under `prefix`, by whole components (Toil compares strings, so it also
/// counts `/venv2` as under `/venv`); symlinks are resolved when the plain paths differ.
fn is_under(path: &Path, prefix: &Path) -> bool {
    path.starts_with(prefix) || realpath(path).starts_with(realpath(prefix))
}

/// Toil's `_resourcePath` and `_getResourceClass`: what to ship for a descriptor.
///
/// - an engine module (name starts with `engine_prefix`): nothing;
/// - from a virtualenv: `dirPath`, as a virtualenv resource when it is a `site-packages`
///   directory, else as a directory (Toil would fail there with "An incorrect path was passed
///   through");
/// - a dotted name: the root package `dirPath/<root>`, a directory;
/// - a stand-alone script: its whole directory (so helper modules come along), refused when the
///   directory is a package; the hint names `exact_python` (such as `python3.11`).
pub fn ship_plan(
    descriptor: &ModuleDescriptor,
    exact_python: &str,
    engine_prefix: &str,
) -> Result<Shipping, DiscoveryError> {
    if !engine_prefix.is_empty() && descriptor.is_engine_module(Some(engine_prefix)) {
        return Ok(Shipping::EngineModule {
            prefix: engine_prefix.to_owned(),
        });
    }
    let dir = &descriptor.dir_path;
    let path = descriptor.resource_path();
    if descriptor.from_virtual_env {
        let kind = if dir.file_name().is_some_and(|n| n == "site-packages") {
            ResourceKind::VirtualEnv
        } else {
            ResourceKind::Directory
        };
        return Ok(Shipping::Ship(ShipPlan {
            path,
            kind,
            package_root: false,
        }));
    }
    let package_root = descriptor.name.contains('.');
    if !package_root && let Some(init) = INIT_FILES.iter().find(|init| dir.join(init).exists()) {
        let parent = dir.parent().unwrap_or(dir);
        let package = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Toil's own hint names the package directory and a path as the module; this one
        // is the command that works.
        let hint = format!(
            "PYTHONPATH={} {exact_python} -m {package}.{}",
            shell_quote(&parent.to_string_lossy()),
            descriptor.name
        );
        return Err(DiscoveryError::ScriptInPackage {
            module: descriptor.name.clone(),
            dir: dir.clone(),
            init: (*init).to_owned(),
            hint,
        });
    }
    let kind = match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => ResourceKind::Directory,
        Ok(meta) if meta.is_file() => ResourceKind::File,
        Ok(_) => {
            return Err(DiscoveryError::NothingToShip {
                path,
                name: descriptor.name.clone(),
                reason: "neither a file nor a directory",
            });
        }
        Err(_) => {
            return Err(DiscoveryError::NothingToShip {
                path,
                name: descriptor.name.clone(),
                reason: "no such file or directory",
            });
        }
    };
    Ok(Shipping::Ship(ShipPlan {
        path,
        kind,
        package_root,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_paths_follow_toil() -> Result<(), DiscoveryError> {
        let file = Path::new("/src/a/c/c.py");
        assert_eq!(imported_dir(file, "c", "a.c.c")?, Path::new("/src"));
        assert_eq!(
            strip_packages(file, "a.c.c", &["a", "c"])?,
            Path::new("/src")
        );
        let init = Path::new("/src/a/b/__init__.py");
        assert_eq!(imported_dir(init, "__init__", "a.b")?, Path::new("/src"));
        for (file, name) in [
            ("/src/a/b/c.py", "x.b.c"),
            ("/src/a/b/c.py", "a.b.d"),
            ("/c.py", "a.b.c"),
        ] {
            let stem = Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            let result = imported_dir(Path::new(file), &stem.unwrap_or_default(), name);
            assert!(
                matches!(result, Err(DiscoveryError::IncorrectPackagePath { .. })),
                "{file} {name}"
            );
        }
        Ok(())
    }

    #[test]
    fn dotted_names() {
        assert!(check_dotted_name("a.b_c.d1").is_ok());
        for bad in ["", "a..b", ".a", "a-b", "1a"] {
            assert!(check_dotted_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn engine_modules_never_ship() -> Result<(), Box<dyn std::error::Error>> {
        let module = ModuleDescriptor::new("/nonexistent".into(), "toil.resource".into(), false)?;
        let shipping = ship_plan(&module, "python3.11", DEFAULT_ENGINE_PREFIX)?;
        assert_eq!(shipping.plan(), None);
        let mine = ModuleDescriptor::new("/x".into(), "toilet".into(), true)?;
        assert!(
            ship_plan(&mine, "python3.11", DEFAULT_ENGINE_PREFIX)?
                .plan()
                .is_some()
        );
        Ok(())
    }
}
