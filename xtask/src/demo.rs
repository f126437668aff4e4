//! `cargo xtask demo`: the main job on the local-disk store, end to end, with no account and no
//! server. A leader ships a small Python package through a directory job store; a "worker" that
//! sees only the exported lines downloads it, verifies it and runs the module from its local copy.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::project::Project;
use crate::run::{header, output_checked, run_checked};

const FLOW: &str = "\
import sys
from greeting import words

def main():
    print('hello from', __name__, 'with', words.WORDS, 'and arguments', sys.argv[1:])

if __name__ == '__main__':
    main()
";

/// Builds `resource` and runs the demo in a scratch directory under the target directory.
pub(crate) fn run(project: &Project) -> Result<()> {
    header("cargo build -p resource-cli");
    run_checked(
        project
            .cargo()
            .args(["build", "--quiet", "-p", "resource-cli"]),
    )?;
    let resource = project.target_dir().join("debug/resource");

    let scratch = project.target_dir().join("demo");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    }
    let leader = scratch.join("leader");
    let package = leader.join("greeting");
    fs::create_dir_all(&package).with_context(|| format!("creating {}", package.display()))?;
    fs::write(package.join("__init__.py"), "")?;
    fs::write(
        package.join("words.py"),
        "WORDS = 'a shipped helper module'\n",
    )?;
    fs::write(package.join("flow.py"), FLOW)?;

    header("leader: resource module describe -m greeting.flow");
    let descriptor = output_checked(
        Command::new(&resource)
            .args(["module", "describe", "-m", "greeting.flow"])
            .current_dir(&leader),
    )?;
    println!("{}", descriptor.trim_end());

    header("leader: resource module save -m greeting.flow --store ../jobstore");
    let exports = output_checked(
        Command::new(&resource)
            .args([
                "module",
                "save",
                "-m",
                "greeting.flow",
                "--store",
                "../jobstore",
            ])
            .current_dir(&leader),
    )?;
    println!("{}", exports.trim_end());

    // The leader's copy goes away: the worker has only the job store and the exported lines.
    fs::rename(&leader, scratch.join("leader-gone"))?;
    let root = scratch.join("worker-root");
    header("worker: resource module exec … -- one two (a shell with only the exported lines)");
    let script = format!(
        "{exports}\n\"$RESOURCE\" module exec {} -- one two\n\"$RESOURCE\" cache ls",
        descriptor.trim_end()
    );
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(&scratch)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RESOURCE", &resource)
        .env("JTRES_ROOT", &root)
        .status()
        .context("cannot start /bin/sh")?;
    if !status.success() {
        bail!("the worker failed ({status})");
    }
    println!(
        "\nDone: the package was stored in {} and installed, verified, under {}.",
        display(&scratch.join("jobstore")),
        display(&root)
    );
    Ok(())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
