//! One function per subcommand: call the library, format the result.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use resource_core::registry::{self, ROOT_VAR};
use resource_store::{JobStore, PublishOptions, StoreLocator};
use serde::Serialize;

use crate::cli::{CleanArgs, Cli, Command, CreateArgs, DownloadArgs, LookupArgs, PrepareArgs};
use crate::output::{ResourceJson, export_line, print_json};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Create(args) => create(args),
        Command::Prepare(args) => prepare(args),
        Command::Lookup(args) => lookup(args),
        Command::Download(args) => download(args),
        Command::Clean(args) => clean(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let locator: StoreLocator = args.store.parse()?;
    let store = JobStore::open(&locator)?;
    let options = PublishOptions {
        kind: args.kind,
        ..PublishOptions::default()
    };
    let published = runtime()?.block_on(resource_store::publish(&store, &args.path, &options))?;
    if args.json {
        print_json(
            &ResourceJson::new(&published.resource)
                .with_upload(published.uploaded, published.stored_bytes),
        )?;
    } else {
        println!("{}", export_line(&published.resource));
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
fn resolve_root(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(root) = flag {
        return Ok(root);
    }
    if let Some(root) = env_var(ROOT_VAR).filter(|root| !root.is_empty()) {
        return Ok(PathBuf::from(root));
    }
    if let Some(cache) = env_var("XDG_CACHE_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(Path::new(&cache).join("resource"));
    }
    if let Some(home) = env_var("HOME").filter(|dir| !dir.is_empty()) {
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
    let source = resource_store::open_url(&resource.url)?;
    let installed = resource_store::install(&resource, &root, source.as_ref(), None)?;
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

fn clean(args: CleanArgs) -> anyhow::Result<ExitCode> {
    let root = match args.root {
        Some(root) => root,
        None => env_var(ROOT_VAR)
            .filter(|root| !root.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("nothing to clean: pass --root or set {ROOT_VAR}"))?,
    };
    match fs_err::remove_dir_all(&root) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error.into()),
    }
}
