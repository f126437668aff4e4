//! What the subcommands share: the async runtime, variables of the process environment (which the
//! libraries never read themselves: they are handed the values), store opening, pack options from
//! the flags, the root of local copies, and publishing with its printed result.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use resource_archive::PackOptions;
use resource_core::paths::{normalize_join, normalize_lexically};
use resource_core::registry::ROOT_VAR;
use resource_store::{JobStore, PublishOptions, StoreConfig, StoreLocator};

use crate::cli::{PackArgs, StoreArgs};
use crate::output::{ResourceJson, export_line, print_json, print_line};

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A variable of the process environment; empty counts as unset.
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Pack options from the flags and the environment (`SOURCE_DATE_EPOCH`, `HOME`).
pub(crate) fn pack_options(args: &PackArgs) -> anyhow::Result<PackOptions> {
    let source_date_epoch = env_var("SOURCE_DATE_EPOCH");
    Ok(PackOptions {
        compression: args.compression,
        symlinks: args.symlinks,
        mtime_clamp: PackOptions::reproducible_mtime_clamp(
            source_date_epoch.as_deref(),
            args.reproducible,
        )?,
        excludes: args.exclude.clone(),
        gitignore: args.gitignore,
        package_root: false,
        extra_trees: Vec::new(),
        home_dir: env_var("HOME").map(PathBuf::from),
    })
}

/// The leader path made absolute as Python's `os.path.abspath` makes it: joined to the current
/// directory and normalised lexically, without resolving symbolic links. Its hash names the
/// resource, so `./flow.py` on the leader and `/abs/flow.py` on a worker find one resource.
pub(crate) fn leader_path(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(normalize_lexically(path));
    }
    let cwd = std::env::current_dir().with_context(|| {
        format!(
            "{}: cannot make the leader path absolute: the current directory cannot be read",
            path.display()
        )
    })?;
    Ok(normalize_join(&cwd, path))
}

/// The cloud settings of the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
pub(crate) fn environment_config() -> StoreConfig {
    StoreConfig::from_vars(std::env::vars())
}

pub(crate) fn open_store(args: &StoreArgs) -> anyhow::Result<JobStore> {
    let locator: StoreLocator = args.locator.parse()?;
    let mut config = StoreConfig {
        endpoint: args.endpoint.clone(),
        url_ttl: Duration::from_secs(args.url_ttl),
        direct_urls: args.direct_url,
        ..environment_config()
    };
    if let Some(profile) = &args.profile {
        // Later settings win, so the flag overrides AWS_PROFILE.
        config
            .settings
            .push(("AWS_PROFILE".to_owned(), profile.clone()));
    }
    Ok(JobStore::open_with(&locator, &config)?)
}

/// Publishes `path` into the store under its absolute [`leader_path`] and prints the export
/// line, or the JSON object.
pub(crate) fn publish_and_print(
    store: &StoreArgs,
    path: &Path,
    options: &PublishOptions,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = leader_path(path)?;
    let store = open_store(store)?;
    let published = runtime()?.block_on(resource_store::publish(&store, &path, options))?;
    if json {
        print_json(
            &ResourceJson::new(&published.resource, &path)
                .with_upload(published.uploaded, published.stored_bytes),
        )?;
    } else {
        print_line(export_line(&published.resource))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The per-user cache directory of the environment (`XDG_CACHE_HOME`, else `~/.cache`).
pub(crate) fn user_cache_dir() -> Option<PathBuf> {
    let (cache, home) = (env_var("XDG_CACHE_HOME"), env_var("HOME"));
    resource_store::cache::user_cache_dir(
        cache.as_deref().map(Path::new),
        home.as_deref().map(Path::new),
    )
}

/// The root of local copies, if there is one: the flag, else `JTRES_ROOT`, else the default in
/// the per-user cache directory.
pub(crate) fn root_of_local_copies(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| env_var(ROOT_VAR).map(PathBuf::from))
        .or_else(|| user_cache_dir().map(|dir| resource_store::cache::default_root(&dir)))
}

/// The root of local copies: the flag, else `JTRES_ROOT`, else a per-user cache directory.
pub(crate) fn resolve_root(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    root_of_local_copies(flag).ok_or_else(no_root)
}

/// The error of a command that needs a root of local copies and has none.
pub(crate) fn no_root() -> anyhow::Error {
    anyhow!("no root for local copies: pass --root, or set {ROOT_VAR} (see `resource prepare`)")
}

/// The exit code to pass on for a child's status; a child killed by a signal gives 128 + signal,
/// as shells report it.
pub(crate) fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
