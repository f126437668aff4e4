//! One function per subcommand: call the library, format the result.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use resource_archive::PackOptions;
use resource_core::registry::{self, ROOT_VAR};
use resource_store::{
    Cache, FetchPolicy, InstallOptions, JobStore, PublishOptions, StoreConfig, StoreLocator,
};
use serde::Serialize;

use crate::cli::{
    CacheCommand, CacheGcArgs, CacheLsArgs, CleanArgs, Cli, Command, CreateArgs, DownloadArgs,
    LookupArgs, PackArgs, PrepareArgs, RefreshArgs, StoreArgs,
};
use crate::output::{ProgressDisplay, ResourceJson, export_line, print_json};

/// The mtime `--reproducible` records when `SOURCE_DATE_EPOCH` is not set: 1980-01-01, the
/// earliest a zip can hold.
const REPRODUCIBLE_EPOCH: i64 = 315_532_800;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Create(args) => create(args),
        Command::Prepare(args) => prepare(args),
        Command::Lookup(args) => lookup(args),
        Command::Download(args) => download(args),
        Command::Refresh(args) => refresh(args),
        Command::Clean(args) => clean(args),
        Command::Cache(CacheCommand::Ls(args)) => cache_ls(args),
        Command::Cache(CacheCommand::Gc(args)) => cache_gc(args),
        Command::Module(command) => crate::module_commands::run(command),
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Pack options from the flags and the environment (`SOURCE_DATE_EPOCH`, `HOME`).
pub(crate) fn pack_options(args: &PackArgs) -> anyhow::Result<PackOptions> {
    let source_date_epoch = match env_var("SOURCE_DATE_EPOCH") {
        Some(value) => Some(value.trim().parse::<i64>().with_context(|| {
            format!("SOURCE_DATE_EPOCH={value:?} is not a whole number of seconds")
        })?),
        None => None,
    };
    let mtime_clamp = match (source_date_epoch, args.reproducible) {
        (Some(epoch), _) => Some(epoch),
        (None, true) => Some(REPRODUCIBLE_EPOCH),
        (None, false) => None,
    };
    Ok(PackOptions {
        compression: args.compression,
        symlinks: args.symlinks,
        mtime_clamp,
        excludes: args.exclude.clone(),
        gitignore: args.gitignore,
        package_root: false,
        extra_trees: Vec::new(),
        home_dir: env_var("HOME").map(PathBuf::from),
    })
}

/// For a virtualenv's `site-packages`, also packs the source trees of its editable installs, so
/// that they import on a worker.
pub(crate) fn with_editable_sources(
    path: &Path,
    kind: Option<resource_core::ResourceKind>,
    mut pack: PackOptions,
) -> anyhow::Result<PackOptions> {
    // A path that cannot be published is reported by the publish itself, after the store.
    if let Ok(resource_core::ResourceKind::VirtualEnv) =
        resource_store::publish::detect_kind(path, kind)
    {
        pack.extra_trees = resource_modules::editable_extra_trees(path)?;
    }
    Ok(pack)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DryRunJson<'a> {
    kind: &'static str,
    name: &'a str,
    path_hash: &'a str,
    files: u64,
    dirs: u64,
    bytes: u64,
    archive_bytes: u64,
    content_hash: &'a str,
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let display = ProgressDisplay::new("stored");
    let options = PublishOptions {
        kind: args.kind,
        pack: with_editable_sources(&args.path, args.kind, pack_options(&args.pack)?)?,
        progress: display.callback(),
    };
    if args.dry_run {
        let plan = resource_store::dry_run(&args.path, &options)?;
        let json = DryRunJson {
            kind: plan.kind.short_name(),
            name: &plan.name,
            path_hash: plan.path_hash.as_str(),
            files: plan.files,
            dirs: plan.dirs,
            bytes: plan.bytes,
            archive_bytes: plan.stored_bytes,
            content_hash: plan.content_hash.as_str(),
        };
        if args.json {
            print_json(&json)?;
        } else {
            println!(
                "{} {}: {} files, {} directories, {} bytes; stored size {} bytes; content hash {}",
                json.kind,
                json.name,
                json.files,
                json.dirs,
                json.bytes,
                json.archive_bytes,
                json.content_hash
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let published = publish_and_print(&args.store, &args.path, &options, args.json);
    display.finish();
    published
}

/// Publishes `path` into the store and prints the export line, or the JSON object.
pub(crate) fn publish_and_print(
    store: &StoreArgs,
    path: &Path,
    options: &PublishOptions,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_store(store)?;
    let published = runtime()?.block_on(resource_store::publish(&store, path, options))?;
    if json {
        print_json(
            &ResourceJson::new(&published.resource)
                .with_upload(published.uploaded, published.stored_bytes),
        )?;
    } else {
        println!("{}", export_line(&published.resource));
    }
    Ok(ExitCode::SUCCESS)
}

/// The cloud settings of the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
pub(crate) fn environment_config() -> StoreConfig {
    StoreConfig::from_vars(std::env::vars())
}

pub(crate) fn open_store(args: &StoreArgs) -> anyhow::Result<JobStore> {
    let locator: StoreLocator = args.locator.parse()?;
    let config = StoreConfig {
        endpoint: args.endpoint.clone(),
        url_ttl: Duration::from_secs(args.url_ttl),
        direct_urls: args.direct_url,
        ..environment_config()
    };
    Ok(JobStore::open_with(&locator, &config)?)
}

fn refresh(args: RefreshArgs) -> anyhow::Result<ExitCode> {
    let resource = find_resource(&args.path)?;
    let store = open_store(&args.store)?;
    let refreshed = runtime()?.block_on(resource_store::refresh(&store, &resource))?;
    if args.json {
        print_json(&ResourceJson::new(&refreshed))?;
    } else {
        println!("{}", export_line(&refreshed));
    }
    Ok(ExitCode::SUCCESS)
}

fn prepare(args: PrepareArgs) -> anyhow::Result<ExitCode> {
    let existing = env_var(ROOT_VAR)
        .map(PathBuf::from)
        .filter(|root| !args.fresh && root.is_dir());
    let root = match existing {
        Some(root) => root,
        None => tempfile::Builder::new()
            .prefix("jtres-")
            .tempdir()
            .context("cannot create a private root directory")?
            .keep(),
    };
    let root = root
        .to_str()
        .ok_or_else(|| anyhow!("{}: the root path is not valid UTF-8", root.display()))?;
    println!("{}", registry::export_line(ROOT_VAR, root));
    Ok(ExitCode::SUCCESS)
}

fn find_resource(path: &Path) -> anyhow::Result<resource_core::Resource> {
    registry::lookup(path, env_var)?.ok_or_else(|| {
        anyhow!(
            "{}: no resource is registered for this path ({} is not set); run `eval \"$(resource create …)\"` on the leader and pass the variable on",
            path.display(),
            registry::resource_var(&resource_core::PathHash::of_path(path)),
        )
    })
}

fn lookup(args: LookupArgs) -> anyhow::Result<ExitCode> {
    let resource = find_resource(&args.path)?;
    if args.json {
        print_json(&ResourceJson::new(&resource))?;
    } else {
        println!("{}", export_line(&resource));
    }
    Ok(ExitCode::SUCCESS)
}

/// The root of local copies: the flag, else `JTRES_ROOT`, else a per-user cache directory.
pub(crate) fn resolve_root(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(root) = flag {
        return Ok(root);
    }
    if let Some(root) = env_var(ROOT_VAR) {
        return Ok(PathBuf::from(root));
    }
    if let Some(cache) = env_var("XDG_CACHE_HOME") {
        return Ok(Path::new(&cache).join("resource"));
    }
    if let Some(home) = env_var("HOME") {
        return Ok(Path::new(&home).join(".cache").join("resource"));
    }
    bail!("no root for local copies: pass --root, or set {ROOT_VAR} (see `resource prepare`)")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DownloadJson<'a> {
    path: &'a Path,
    dir: &'a Path,
    downloaded: bool,
    content_hash: &'a str,
    kind: &'static str,
}

fn download(args: DownloadArgs) -> anyhow::Result<ExitCode> {
    let resource = find_resource(&args.path)?;
    let root = resolve_root(args.root)?;
    let source = resource_store::open_url(&resource.url, &environment_config())?;
    let display = ProgressDisplay::new("fetched");
    let options = InstallOptions {
        lock_timeout: Duration::from_secs(args.lock_timeout),
        progress: display.callback(),
        fetch: FetchPolicy {
            parallel_ranges: args
                .parallel_ranges
                .map_or(FetchPolicy::default().parallel_ranges, usize::from),
            ..FetchPolicy::default()
        },
        ..InstallOptions::default()
    };
    let installed = resource_store::install(&resource, &root, source, None, &options);
    display.finish();
    let installed = installed?;
    if args.hold {
        // The shared lock in `installed` is held until the command ends.
        return run_holding(&args.command, &installed.path);
    }
    if args.json {
        print_json(&DownloadJson {
            path: &installed.path,
            dir: &installed.dir,
            downloaded: installed.downloaded,
            content_hash: resource.content_hash.as_str(),
            kind: resource.kind.short_name(),
        })?;
    } else {
        println!("{}", installed.path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a command with `RESOURCE_PATH` set, passing its exit code through.
fn run_holding(command: &[std::ffi::OsString], path: &Path) -> anyhow::Result<ExitCode> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow!("--hold needs a command after --"))?;
    let status = std::process::Command::new(program)
        .args(args)
        .env("RESOURCE_PATH", path)
        .status()
        .with_context(|| format!("cannot run {}", Path::new(program).display()))?;
    Ok(exit_code_of(status))
}

/// The exit code to pass on for a child's status; a child killed by a signal gives 128 + signal,
/// as shells report it.
pub fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn clean(args: CleanArgs) -> anyhow::Result<ExitCode> {
    let root = match args.root {
        Some(root) => root,
        None => env_var(ROOT_VAR)
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("nothing to clean: pass --root or set {ROOT_VAR}"))?,
    };
    let report = Cache::new(&root).clean()?;
    if !report.kept_in_use.is_empty() {
        let kept: Vec<&str> = report
            .kept_in_use
            .iter()
            .map(|hash| hash.as_str())
            .collect();
        bail!(
            "{}: kept {} entries in use by running processes ({}); removed {}",
            root.display(),
            kept.len(),
            kept.join(", "),
            report.removed
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cache_ls(args: CacheLsArgs) -> anyhow::Result<ExitCode> {
    let root = resolve_root(args.root)?;
    let entries = Cache::new(&root).entries()?;
    if args.json {
        print_json(&entries)?;
    } else {
        for entry in &entries {
            println!(
                "{}  {:>4}  {:>12}  {}  {}{}",
                entry.content_hash,
                entry.kind.as_deref().unwrap_or("?"),
                entry.size,
                entry.last_used,
                entry.name.as_deref().unwrap_or("?"),
                if entry.in_use { "  (in use)" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cache_gc(args: CacheGcArgs) -> anyhow::Result<ExitCode> {
    let root = resolve_root(args.root)?;
    let report = Cache::new(&root).gc(args.max_size)?;
    if args.json {
        print_json(&report)?;
    } else {
        println!(
            "evicted {} entries; {} bytes left; {} in use kept",
            report.evicted.len(),
            report.remaining_bytes,
            report.kept_in_use.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
