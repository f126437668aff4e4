//! The command line, as clap sees it. The forms and flags here are a contract scripts rely on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use resource_core::ResourceKind;

/// Ship user code (a script, a package, a virtualenv's site-packages, any file or directory) to
/// worker nodes through a job store, compatible with Toil's `toil.resource`.
#[derive(Debug, Parser)]
#[command(name = "resource", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store PATH in a job store and print the `export` line that registers it.
    Create(CreateArgs),
    /// Print `export JTRES_ROOT=…` for a private root of local copies (Toil's prepareSystem).
    Prepare(PrepareArgs),
    /// Show the resource registered for PATH in the environment.
    Lookup(LookupArgs),
    /// Fetch, verify and install the resource registered for PATH; print its local path.
    Download(DownloadArgs),
    /// Remove the root of local copies (Toil's cleanSystem).
    Clean(CleanArgs),
}

/// `resource create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The leader path to ship: a file or a directory.
    pub path: PathBuf,
    /// The job store: a directory path or a file: URL (created if missing).
    #[arg(long, value_name = "LOCATOR")]
    pub store: String,
    /// Publish as this kind instead of detecting it (file, dir, venv).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<ResourceKind>,
    /// Print one JSON object instead of the export line.
    #[arg(long)]
    pub json: bool,
}

/// `resource prepare`.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Make a new root even if JTRES_ROOT already names one.
    #[arg(long)]
    pub fresh: bool,
}

/// `resource lookup`.
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The leader path, exactly as it was given to `create`.
    pub path: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `resource download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The leader path, exactly as it was given to `create`.
    pub path: PathBuf,
    /// The root of local copies; default: JTRES_ROOT, else a per-user cache directory.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print one JSON object instead of the local path.
    #[arg(long)]
    pub json: bool,
}

/// `resource clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// The root to remove; default: JTRES_ROOT.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}
