//! Toil's `ModuleDescriptor.localize()` on a worker: find the module's resource by the leader path
//! it is registered under, install it with `.stash` written before it appears under its final
//! name, and point the descriptor at the local copy.

use std::path::{Path, PathBuf};

use resource_core::ModuleDescriptor;
use resource_core::module::STASH_FILE;
use resource_core::registry::{self, LookupError};

use crate::{InstallOptions, Installed, StoreConfig, StoreError, install, open_url};

/// How to localise a module.
#[derive(Debug, Clone, Default)]
pub struct LocalizeOptions {
    /// Modules whose name starts with this belong to the engine and are never localised; `None`
    /// for Toil's `toil.`.
    pub engine_prefix: Option<String>,
    /// The root of local copies. Needed only when the module's resource is registered, so a
    /// module that is not one is returned unchanged without it.
    pub root: Option<PathBuf>,
    /// How the resource's URL is opened (credentials for direct `s3://`, `gs://`, `az://` URLs).
    pub config: StoreConfig,
    /// How the resource is fetched and installed.
    pub install: InstallOptions,
}

/// What [`localize`] gives back.
#[derive(Debug)]
pub struct Localized {
    /// The descriptor pointing at the local copy, or the one given when the module is the
    /// engine's or not a registered resource.
    pub module: ModuleDescriptor,
    /// The installed entry, held (no `gc` or `clean` removes it) until this is dropped; `None`
    /// when nothing was localised.
    pub installed: Option<Installed>,
}

/// Why a module could not be localised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalizeError {
    /// The registry variable of the module's leader path could not be read.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The module's resource is registered, but no root for local copies was given.
    #[error(
        "{}: the module's resource is registered, but no root for local copies was given (set JTRES_ROOT)",
        path.display()
    )]
    NoRoot {
        /// The leader path the resource is registered under.
        path: PathBuf,
    },
    /// Fetching or installing the resource failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Toil's `localize()`: looks the module's resource up in `vars` (the registry variables, such as
/// the process environment, passed by the caller) under [`ModuleDescriptor::resource_path`],
/// installs it under the root with `.stash` written into it before the rename (so
/// [`ModuleDescriptor::globalized_from_stash`] can give the original back), and returns the
/// descriptor pointing at the local copy with the entry held. An engine module, or one whose
/// resource is not registered, comes back unchanged.
pub fn localize(
    module: &ModuleDescriptor,
    vars: impl Fn(&str) -> Option<String>,
    options: &LocalizeOptions,
) -> Result<Localized, LocalizeError> {
    let unchanged = || Localized {
        module: module.clone(),
        installed: None,
    };
    if module.is_engine_module(options.engine_prefix.as_deref()) {
        return Ok(unchanged());
    }
    let leader_path = module.resource_path();
    let Some(resource) = registry::lookup(&leader_path, vars)? else {
        return Ok(unchanged());
    };
    let root = options
        .root
        .as_deref()
        .ok_or(LocalizeError::NoRoot { path: leader_path })?;
    let source = open_url(&resource.url, &options.config)?;
    let stash = module.stash_contents();
    let write_stash = |dir: &Path| std::fs::write(dir.join(STASH_FILE), &stash);
    let installed = install(
        &resource,
        root,
        source,
        Some(&write_stash),
        &options.install,
    )?;
    Ok(Localized {
        module: module.localized_at(&installed.dir),
        installed: Some(installed),
    })
}
