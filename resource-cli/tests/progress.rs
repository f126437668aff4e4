//! The progress bar of `create` and `download`: on a terminal (a pseudo-terminal made by
//! util-linux `script`) it shows bytes of a known total and an ETA; on a pipe, or with `--quiet`,
//! nothing is drawn.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const RESOURCE: &str = env!("CARGO_BIN_EXE_resource");

/// Three MiB exactly, which the bar shows as its total.
const SIZE: usize = 3 << 20;
const TOTAL_SHOWN: &str = "/3.00 MiB";

/// Runs `resource ARGS` on a pseudo-terminal (stdin, stdout and stderr all on it) in `cwd` with
/// only `env`, and returns everything the terminal received.
fn on_a_terminal(cwd: &Path, args: &str, env: &[(&str, &str)]) -> std::io::Result<Output> {
    Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("\"$RESOURCE\" {args}"))
        .arg("/dev/null")
        .current_dir(cwd)
        .env_clear()
        .env("RESOURCE", RESOURCE)
        .env("TERM", "xterm")
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .output()
}

fn on_a_pipe(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Output> {
    Command::new(RESOURCE)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().copied())
        .output()
}

#[test]
fn a_terminal_shows_the_total_and_an_eta_and_a_pipe_shows_nothing() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::write(dir.join("data.bin"), vec![5u8; SIZE])?;

    let created = on_a_terminal(dir, "create data.bin --store js", &[])?;
    let screen = String::from_utf8_lossy(&created.stdout);
    assert!(created.status.success(), "{screen}");
    assert!(screen.contains(TOTAL_SHOWN), "no total: {screen:?}");
    assert!(screen.contains("stored"), "{screen:?}");
    assert!(screen.contains("ETA"), "no ETA: {screen:?}");
    let export = screen
        .lines()
        .find_map(|line| line.trim().split("export ").nth(1))
        .ok_or("no export line")?;
    let (var, value) = export.split_once('=').ok_or("no '='")?;
    let value = value.trim().trim_matches('\'');
    let root = dir.join("root");
    let root_text = root.to_str().ok_or("not UTF-8")?;
    let env = [(var, value), ("JTRES_ROOT", root_text)];

    let downloaded = on_a_terminal(dir, "download data.bin", &env)?;
    let screen = String::from_utf8_lossy(&downloaded.stdout);
    assert!(downloaded.status.success(), "{screen}");
    assert!(screen.contains(TOTAL_SHOWN), "no total: {screen:?}");
    assert!(screen.contains("fetched"), "{screen:?}");
    assert!(screen.contains("ETA"), "no ETA: {screen:?}");

    // --quiet on the terminal, and a pipe without it: no bar.
    fs::remove_dir_all(&root)?;
    let quiet = on_a_terminal(dir, "download data.bin --quiet", &env)?;
    let screen = String::from_utf8_lossy(&quiet.stdout);
    assert!(quiet.status.success(), "{screen}");
    assert!(
        !screen.contains("ETA") && !screen.contains("MiB"),
        "{screen:?}"
    );

    fs::remove_dir_all(&root)?;
    fs::write(dir.join("data.bin"), vec![6u8; SIZE])?;
    let piped = on_a_pipe(dir, &["create", "data.bin", "--store", "js", "--json"], &[])?;
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&piped.stdout)?;
    let var = json["envName"].as_str().ok_or("no envName")?;
    let value = json["envValue"].as_str().ok_or("no envValue")?;
    let env = [(var, value), ("JTRES_ROOT", root_text)];
    let piped = on_a_pipe(dir, &["download", "data.bin"], &env)?;
    assert!(
        piped.status.success(),
        "{:?}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(
        piped.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&piped.stderr)
    );
    Ok(())
}
