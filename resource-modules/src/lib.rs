//! Python module discovery, virtualenv detection and `site-packages` scanning.
//!
//! This answers what Toil's `ModuleDescriptor.forModule` answers — which directory, which dotted
//! name, from a virtualenv or not — and what to ship for it, without running any of the user's
//! code. The interpreter is asked once for its facts (prefixes, `sys.path`, built-in and
//! standard-library names, import suffixes); the answer is cached per interpreter, environment
//! and file stamps, and everything else (finding modules, the collision check, the package
//! checks) is done in Rust on the file system.
//!
//! ```
//! use resource_modules::{Discoverer, FactsCache, InterpreterChoice, ModuleSource};
//! use resource_core::ResourceKind;
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("flow.py"), "import helper\n")?;
//! std::fs::write(dir.path().join("helper.py"), "")?;
//!
//! // The CLI passes the real environment; the library never reads it itself.
//! let choice = InterpreterChoice::from_env(|name| std::env::var(name).ok());
//! let discoverer = Discoverer::new(choice, FactsCache::in_memory(), dir.path());
//! let found = discoverer.discover(&ModuleSource::Script("flow.py".into()))?;
//!
//! assert_eq!(found.descriptor.name, "flow");
//! assert_eq!(found.descriptor.dir_path, dir.path());
//! // A stand-alone script ships with its whole directory, so `helper` comes along.
//! let plan = found.shipping.plan().ok_or("not shipped")?;
//! assert_eq!((plan.path.as_path(), plan.kind), (dir.path(), ResourceKind::Directory));
//! let json = serde_json::to_value(&found)?;
//! assert_eq!(json["name"], "flow");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The parts:
//! - [`env`](mod@env): the interpreter to ask ([`InterpreterChoice::from_env`]) and the environment values it
//!   runs with.
//! - [`interpreter`]: asking the interpreter ([`query_interpreter`]) and the [`FactsCache`] (in
//!   memory and on disk, checked against the stamps of every file the answer depends on).
//! - [`discover`](mod@discover): the three ways Toil meets a module ([`ModuleSource`]), its checks and errors, and
//!   the [`ShipPlan`].
//! - [`venv`]: whether the interpreter runs in a virtualenv, and its `pyvenv.cfg`.
//! - [`scan`]: what a `site-packages` directory holds, from its files alone, including editable
//!   installs and the source trees they point at ([`editable_sources`]).
//! - [`resolve`]: Python's path-based module finding, in Rust.
//! - [`worker`]: the command that runs a localised module (the leader path a module's resource
//!   is registered under is [`ModuleDescriptor::resource_path`](resource_core::ModuleDescriptor::resource_path)).
//!
//! For benchmarks: a cold discovery is [`query_interpreter`] followed by [`discover()`]; a warm one
//! is [`Discoverer::discover`] with a [`FactsCache`] that already holds the snapshot (in memory, or
//! on disk via [`FactsCache::with_dir`]), which never starts the interpreter; a scan is
//! [`scan_site_packages`].

pub mod discover;
pub mod env;
#[doc(hidden)]
pub mod fuzzing;
pub mod interpreter;
mod names;
mod pyliteral;
pub mod resolve;
pub mod scan;
pub mod venv;
pub mod worker;

pub use discover::{
    CollidesWith, DEFAULT_ENGINE_PREFIX, Discoverer, Discovery, DiscoveryContext, DiscoveryError,
    ModuleSource, ShipPlan, Shipping, discover, ship_plan,
};
pub use env::{InterpreterChoice, PythonEnv};
pub use interpreter::{
    FactsCache, InterpreterError, InterpreterFacts, InterpreterSnapshot, Lookup, PythonVersion,
    SnapshotSource, query_interpreter,
};
pub use scan::{
    EditableSource, ScanError, ScanReport, editable_extra_trees, editable_sources,
    scan_site_packages,
};
pub use venv::{PyvenvCfg, VirtualEnvInfo, virtual_env_info};
pub use worker::run_module_command;
