//! The command line, as clap sees it. The forms and flags here are a contract scripts rely on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use resource_archive::{Compression, SymlinkPolicy};
use resource_core::ResourceKind;

/// Ship user code (a script, a package, a virtualenv's site-packages, any file or directory) to
/// worker nodes through a job store, compatible with Toil's `toil.resource`.
#[derive(Debug, Parser)]
#[command(name = "resource", version, about, long_about = None)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Store PATH in a job store and print the `export` line that registers it.
    Create(CreateArgs),
    /// Print `export JTRES_ROOT=…` for a private root of local copies (Toil's prepareSystem).
    Prepare(PrepareArgs),
    /// Show the resource registered for PATH in the environment.
    Lookup(LookupArgs),
    /// Fetch, verify and install the resource registered for PATH; print its local path.
    Download(DownloadArgs),
    /// Re-sign the URL of the resource registered for PATH and print the new export line.
    Refresh(RefreshArgs),
    /// Remove the root of local copies (Toil's cleanSystem), sparing entries in use.
    Clean(CleanArgs),
    /// Inspect and trim the root of local copies.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Ship, localise and run Python modules as Toil's ModuleDescriptor does.
    #[command(subcommand)]
    Module(ModuleCommand),
}

/// `resource module …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ModuleCommand {
    /// Describe a module as Toil's ModuleDescriptor.forModule does.
    Describe(DescribeArgs),
    /// Store the module's code (its directory, root package or virtualenv) in a job store.
    Save(SaveArgs),
    /// Report what a site-packages directory holds.
    Scan(ScanArgs),
    /// Download the module's resource and print the localised descriptor.
    Localize(DescriptorArgs),
    /// Print the original descriptor of a localised module, from its .stash file.
    Globalize(DescriptorArgs),
    /// Localise the module, then run `python -m NAME ARGS…` with it first on the search path.
    Exec(ExecArgs),
}

/// Which module: a script, a `-m` name, or a name imported from a file.
#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "selector")]
pub(crate) struct ModuleSelector {
    /// A script run as `python SCRIPT.py`.
    #[arg(group = "selector", value_name = "SCRIPT.py")]
    pub script: Option<PathBuf>,
    /// A module run as `python -m NAME`, found on the interpreter's search path.
    #[arg(short = 'm', group = "selector", value_name = "NAME")]
    pub main: Option<String>,
    /// A module imported as --name from this file.
    #[arg(long, group = "selector", requires = "name", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// The interpreter and engine settings of module discovery.
#[derive(Debug, Args)]
pub(crate) struct PythonArgs {
    /// The interpreter to ask; default: $VIRTUAL_ENV/bin/python, else python3 on PATH.
    #[arg(long, value_name = "PY")]
    pub python: Option<PathBuf>,
    /// Modules whose name starts with this belong to the engine and are never shipped.
    #[arg(long, value_name = "PREFIX", default_value = "toil.")]
    pub engine_prefix: String,
}

/// `resource module describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// Which module.
    #[command(flatten)]
    pub selector: ModuleSelector,
    /// The dotted name the module is imported as (with --file).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The interpreter.
    #[command(flatten)]
    pub python: PythonArgs,
    /// Print one JSON object (dirPath, name, fromVirtualEnv, …) instead of the three strings.
    #[arg(long)]
    pub json: bool,
}

/// `resource module save`.
#[derive(Debug, Args)]
pub(crate) struct SaveArgs {
    /// Which module.
    #[command(flatten)]
    pub selector: ModuleSelector,
    /// The dotted name the module is imported as (with --file).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The interpreter.
    #[command(flatten)]
    pub python: PythonArgs,
    /// Where to store it.
    #[command(flatten)]
    pub store: StoreArgs,
    /// How directories are packed.
    #[command(flatten)]
    pub pack: PackArgs,
    /// Print one JSON object instead of the export line.
    #[arg(long)]
    pub json: bool,
}

/// `resource module scan`.
#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// The site-packages directory; default: the interpreter's.
    #[arg(value_name = "SITE_PACKAGES", conflicts_with = "python")]
    pub site_packages: Option<PathBuf>,
    /// The interpreter whose site-packages to scan.
    #[arg(long, value_name = "PY")]
    pub python: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// A module descriptor in Toil's command form.
#[derive(Debug, Args)]
pub(crate) struct DescriptorArgs {
    /// The directory on the search path (dirPath).
    pub dir: PathBuf,
    /// The dotted module name.
    pub name: String,
    /// Whether it came from a virtualenv: True or False.
    pub from_virtual_env: String,
    /// The root of local copies; default: JTRES_ROOT, else a per-user cache directory.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Modules whose name starts with this belong to the engine and are never localised.
    #[arg(long, value_name = "PREFIX", default_value = "toil.")]
    pub engine_prefix: String,
    /// Print one JSON object instead of the three strings.
    #[arg(long)]
    pub json: bool,
}

/// `resource module exec`.
#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// The module's descriptor.
    #[command(flatten)]
    pub descriptor: DescriptorArgs,
    /// The interpreter to run; default: $VIRTUAL_ENV/bin/python, else python3 on PATH.
    #[arg(long, value_name = "PY")]
    pub python: Option<PathBuf>,
    /// Arguments for the module.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<std::ffi::OsString>,
}

/// `resource cache …`.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// List installed entries, least recently used first.
    Ls(CacheLsArgs),
    /// Evict least recently used entries until the cache fits in --max-size; entries in use stay.
    Gc(CacheGcArgs),
}

/// `resource cache ls`.
#[derive(Debug, Args)]
pub(crate) struct CacheLsArgs {
    /// The root of local copies; default: JTRES_ROOT, else a per-user cache directory.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
}

/// `resource cache gc`.
#[derive(Debug, Args)]
pub(crate) struct CacheGcArgs {
    /// The root of local copies; default: JTRES_ROOT, else a per-user cache directory.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The most content to keep, such as 500M, 10G or 1.5GiB (powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Parses a size such as `1048576`, `500K`, `10M`, `1.5G`, `2GiB` or `3TB` (powers of 1024).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write it like 500M, 10G or 1048576"))?;
    let power = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 1,
        "m" | "mb" | "mib" => 2,
        "g" | "gb" | "gib" => 3,
        "t" | "tb" | "tib" => 4,
        _ => return Err(format!("{text:?} has an unknown unit; use K, M, G or T")),
    };
    let bytes = number * 1024f64.powi(power);
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// `resource create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The leader path to ship: a file or a directory. Its absolute form (as Python's
    /// `os.path.abspath` makes it) names the resource.
    pub path: PathBuf,
    /// Where to store it.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Publish as this kind instead of detecting it (file, dir, venv).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<ResourceKind>,
    /// Print one JSON object instead of the export line.
    #[arg(long)]
    pub json: bool,
    /// How directories are packed.
    #[command(flatten)]
    pub pack: PackArgs,
    /// Report files, bytes, archive size, content hash and the largest entries and files;
    /// store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Draw no progress bar (none is drawn when stderr is not a terminal either).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// A job store and how to reach it.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The job store: a directory path or file: URL (created if missing), s3://BUCKET[/PREFIX],
    /// gs://BUCKET[/PREFIX], az://CONTAINER[/PREFIX], aws:REGION:NAME or google:PROJECT:NAME.
    /// S3 credentials are found as the AWS CLI finds them (AWS_* variables, the profile in
    /// ~/.aws/credentials and ~/.aws/config, web identity, instance metadata last); GCS uses
    /// GOOGLE_* or application-default credentials; Azure uses AZURE_* (AZURE_USE_AZURE_CLI=true
    /// for the Azure CLI's login).
    #[arg(long = "store", value_name = "LOCATOR")]
    pub locator: String,
    /// The AWS profile to take S3 credentials and settings from, instead of AWS_PROFILE or
    /// "default".
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The endpoint of an S3-compatible service, an Azure emulator or a GCS server.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// How long presigned URLs stay valid, in seconds (at most 604800, 7 days).
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    pub url_ttl: u64,
    /// Hand workers direct s3://, gs:// or az:// URLs (they need credentials) instead of
    /// presigned ones.
    #[arg(long)]
    pub direct_url: bool,
}

/// `resource refresh`.
#[derive(Debug, Args)]
pub(crate) struct RefreshArgs {
    /// The leader path, as given to `create` (relative paths are made absolute, as Python's
    /// `os.path.abspath` does, so any working directory finds the resource).
    pub path: PathBuf,
    /// The store the resource was created in.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print one JSON object instead of the export line.
    #[arg(long)]
    pub json: bool,
}

/// How a directory is packed into its archive.
#[derive(Debug, Args)]
pub(crate) struct PackArgs {
    /// stored (as Toil does), deflate, or deflate=LEVEL (0-9).
    #[arg(long, value_name = "METHOD", default_value = "stored")]
    pub compression: Compression,
    /// follow (pack what links point to; Toil's workers need it) or keep (store links inside the
    /// tree as links, for our own workers).
    #[arg(long, value_name = "POLICY", default_value = "follow")]
    pub symlinks: SymlinkPolicy,
    /// Leave out paths matching GLOB (relative to the directory, or a base name). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Honour .gitignore files inside the directory and leave out .git.
    #[arg(long)]
    pub gitignore: bool,
    /// Record every mtime as SOURCE_DATE_EPOCH, or as 1980-01-01 when it is not set, so that a
    /// fresh checkout or a `touch` keeps the content hash.
    #[arg(long)]
    pub reproducible: bool,
}

/// `resource prepare`.
#[derive(Debug, Args)]
pub(crate) struct PrepareArgs {
    /// Make a new root even if JTRES_ROOT already names one.
    #[arg(long)]
    pub fresh: bool,
}

/// `resource lookup`.
#[derive(Debug, Args)]
pub(crate) struct LookupArgs {
    /// The leader path, as given to `create` (relative paths are made absolute, as Python's
    /// `os.path.abspath` does, so any working directory finds the resource).
    pub path: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `resource download`.
#[derive(Debug, Args)]
pub(crate) struct DownloadArgs {
    /// The leader path, as given to `create` (relative paths are made absolute, as Python's
    /// `os.path.abspath` does, so any working directory finds the resource).
    pub path: PathBuf,
    /// The root of local copies; default: JTRES_ROOT, else a per-user cache directory.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print one JSON object instead of the local path.
    #[arg(long)]
    pub json: bool,
    /// Draw no progress bar (none is drawn when stderr is not a terminal either).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Seconds to wait for another process installing the same resource.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub lock_timeout: u64,
    /// Ranges fetched at once from a web server or object store, 1 to 64 (default 4; 1 reads one
    /// stream). More than one is used only when the first range shows that ranges pay on this
    /// server.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=64))]
    pub parallel_ranges: Option<u8>,
    /// Run COMMAND with the entry held (no gc or clean removes it meanwhile) and RESOURCE_PATH
    /// set to its local path; exit with its exit code.
    #[arg(long, requires = "command")]
    pub hold: bool,
    /// The command to run with --hold.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// `resource clean`.
#[derive(Debug, Args)]
pub(crate) struct CleanArgs {
    /// The root to remove; default: JTRES_ROOT.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        let check = |text: &str, expected: Option<u64>| {
            assert_eq!(parse_size(text).ok(), expected, "{text}");
        };
        check("1048576", Some(1 << 20));
        check("500K", Some(500 << 10));
        check("10M", Some(10 << 20));
        check("1.5GiB", Some(3 << 29));
        check("2tb", Some(2 << 40));
        check("12 MB", Some(12 << 20));
        check("", None);
        check("ten", None);
        check("5X", None);
        check("-1G", None);
    }
}
