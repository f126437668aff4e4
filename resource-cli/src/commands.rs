//! One function per subcommand: call the library, format the result.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use resource_core::registry::{self, ROOT_VAR};
use resource_store::{Cache, FetchPolicy, InstallOptions, PublishOptions};
use serde::Serialize;

use crate::cli::{
    CacheCommand, CacheGcArgs, CacheLsArgs, CleanArgs, Cli, Command, CreateArgs, DownloadArgs,
    LookupArgs, PrepareArgs, RefreshArgs,
};
use crate::output::{ProgressDisplay, ResourceJson, export_line, print_json, print_line};
use crate::plumbing::{
    env_var, environment_config, exit_code_of, leader_path, open_store, pack_options,
    publish_and_print, resolve_root, runtime,
};

/// Runs a parsed command line.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DryRunJson<'a> {
    kind: &'static str,
    leader_path: &'a Path,
    name: &'a str,
    path_hash: &'a str,
    files: u64,
    dirs: u64,
    bytes: u64,
    archive_bytes: u64,
    content_hash: &'a str,
    largest_entries: Vec<SizedJson<'a>>,
    largest_files: Vec<SizedJson<'a>>,
}

/// One of the largest entries or files of a dry run, with its share of the file bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SizedJson<'a> {
    name: &'a str,
    bytes: u64,
    /// Percent of all file bytes, to one decimal.
    share: f64,
}

fn sized_json(entries: &[resource_store::SizedEntry], total: u64) -> Vec<SizedJson<'_>> {
    entries
        .iter()
        .map(|entry| SizedJson {
            name: &entry.name,
            bytes: entry.bytes,
            share: if total == 0 {
                0.0
            } else {
                (entry.bytes as f64 * 1000.0 / total as f64).round() / 10.0
            },
        })
        .collect()
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let display = ProgressDisplay::new("stored", args.quiet || args.dry_run);
    let options = PublishOptions {
        kind: args.kind,
        pack: pack_options(&args.pack)?,
        progress: display.callback(),
    };
    if args.dry_run {
        let path = leader_path(&args.path)?;
        let plan = resource_store::dry_run(&path, &options)?;
        let json = DryRunJson {
            kind: plan.kind.short_name(),
            leader_path: &path,
            name: &plan.name,
            path_hash: plan.path_hash.as_str(),
            files: plan.files,
            dirs: plan.dirs,
            bytes: plan.bytes,
            archive_bytes: plan.stored_bytes,
            content_hash: plan.content_hash.as_str(),
            largest_entries: sized_json(&plan.largest_entries, plan.bytes),
            largest_files: sized_json(&plan.largest_files, plan.bytes),
        };
        if args.json {
            print_json(&json)?;
        } else {
            print_line(format_args!(
                "{} {}: {} files, {} directories, {} bytes; stored size {} bytes; content hash {}",
                json.kind,
                json.name,
                json.files,
                json.dirs,
                json.bytes,
                json.archive_bytes,
                json.content_hash
            ))?;
            for (title, list) in [
                ("largest top-level entries", &json.largest_entries),
                ("largest files", &json.largest_files),
            ] {
                print_line(format_args!("{title}:"))?;
                for entry in list {
                    print_line(format_args!(
                        "  {:>5.1}%  {:>12} bytes  {}",
                        entry.share, entry.bytes, entry.name
                    ))?;
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let published = publish_and_print(&args.store, &args.path, &options, args.json);
    display.finish();
    published
}

fn refresh(args: RefreshArgs) -> anyhow::Result<ExitCode> {
    let (path, resource) = find_resource(&args.path)?;
    let store = open_store(&args.store)?;
    let refreshed = runtime()?.block_on(resource_store::refresh(&store, &resource))?;
    if args.json {
        print_json(&ResourceJson::new(&refreshed, &path))?;
    } else {
        print_line(export_line(&refreshed))?;
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
    print_line(registry::export_line(ROOT_VAR, root))?;
    Ok(ExitCode::SUCCESS)
}

/// The resource registered for the absolute [`leader_path`] of `path`, with that path.
fn find_resource(path: &Path) -> anyhow::Result<(PathBuf, resource_core::Resource)> {
    let path = leader_path(path)?;
    let resource = registry::lookup(&path, env_var)?.ok_or_else(|| {
        anyhow!(
            "{}: no resource is registered for this path ({} is not set); run `eval \"$(resource create …)\"` on the leader and pass the variable on",
            path.display(),
            registry::resource_var(&resource_core::PathHash::of_path(&path)),
        )
    })?;
    Ok((path, resource))
}

fn lookup(args: LookupArgs) -> anyhow::Result<ExitCode> {
    let (path, resource) = find_resource(&args.path)?;
    if args.json {
        print_json(&ResourceJson::new(&resource, &path))?;
    } else {
        print_line(export_line(&resource))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DownloadJson<'a> {
    leader_path: &'a Path,
    path: &'a Path,
    dir: &'a Path,
    downloaded: bool,
    content_hash: &'a str,
    kind: &'static str,
}

fn download(args: DownloadArgs) -> anyhow::Result<ExitCode> {
    let (leader_path, resource) = find_resource(&args.path)?;
    let root = resolve_root(args.root)?;
    let source = resource_store::open_url(&resource.url, &environment_config())?;
    let display = ProgressDisplay::new("fetched", args.quiet);
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
            leader_path: &leader_path,
            path: &installed.path,
            dir: &installed.dir,
            downloaded: installed.downloaded,
            content_hash: resource.content_hash.as_str(),
            kind: resource.kind.short_name(),
        })?;
    } else {
        print_line(installed.path.display())?;
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
            print_line(format_args!(
                "{}  {:>4}  {:>12}  {}  {}{}",
                entry.content_hash,
                entry.kind.as_deref().unwrap_or("?"),
                entry.size,
                entry.last_used,
                entry.name.as_deref().unwrap_or("?"),
                if entry.in_use { "  (in use)" } else { "" }
            ))?;
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
        print_line(format_args!(
            "evicted {} entries; {} bytes left; {} in use kept",
            report.evicted.len(),
            report.remaining_bytes,
            report.kept_in_use.len()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
