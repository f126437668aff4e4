//! A closed standard output (`resource … | head -1`) ends every command quietly: exit 0, nothing
//! on stderr, no panic (ripgrep's rule).

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const RESOURCE: &str = env!("CARGO_BIN_EXE_resource");

/// Runs `resource ARGS` in `cwd` with exactly `env`, its stdout a pipe already closed by its reader.
fn with_closed_stdout(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Output> {
    let (reader, writer) = std::io::pipe()?;
    drop(reader);
    Command::new(RESOURCE)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().copied())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()?
        .wait_with_output()
}

/// Runs `resource ARGS | head -1` in bash with `pipefail`, returning the pipeline's output.
fn piped_to_head(cwd: &Path, args: &str, env: &[(&str, &str)]) -> std::io::Result<Output> {
    Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; \"$RESOURCE\" {args} | head -1"))
        .current_dir(cwd)
        .env_clear()
        .env("RESOURCE", RESOURCE)
        .envs(env.iter().copied())
        .output()
}

fn run(
    cwd: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<String, Box<dyn std::error::Error>> {
    let output = Command::new(RESOURCE)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().copied())
        .output()?;
    if !output.status.success() {
        return Err(format!("{args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn assert_quiet(what: &str, output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{what} wrote to stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_command_ends_quietly_on_a_closed_stdout() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::write(dir.join("flow.py"), "print(1)\n")?;
    fs::create_dir_all(dir.join("pkg/sub"))?;
    for index in 0..30 {
        fs::write(dir.join(format!("pkg/sub/m{index}.py")), "x = 1\n")?;
    }
    let site = dir.join("venv/lib/python3.11/site-packages");
    for index in 0..40 {
        let dist = site.join(format!("dist{index}-1.0.dist-info"));
        fs::create_dir_all(&dist)?;
        fs::write(
            dist.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: dist{index}\nVersion: 1.0\n"),
        )?;
        fs::write(dist.join("RECORD"), format!("mod{index}.py,,\n"))?;
        fs::write(site.join(format!("mod{index}.py")), "y = 2\n")?;
    }
    let root = dir.join("root");
    let root = root.to_str().ok_or("root is not UTF-8")?;
    let site = site.to_str().ok_or("site-packages is not UTF-8")?;

    // A resource registered in the environment, and one installed entry for the cache commands.
    let created = run(dir, &["create", "flow.py", "--store", "js", "--json"], &[])?;
    let json: serde_json::Value = serde_json::from_str(created.trim())?;
    let var = json["envName"].as_str().ok_or("no envName")?;
    let value = json["envValue"].as_str().ok_or("no envValue")?;
    let env = [(var, value), ("JTRES_ROOT", root)];
    run(dir, &["download", "flow.py"], &env)?;

    let commands: &[&[&str]] = &[
        &["create", "flow.py", "--store", "js"],
        &["create", "pkg", "--store", "js", "--json"],
        &["create", "pkg", "--store", "js", "--dry-run"],
        &["create", "pkg", "--store", "js", "--dry-run", "--json"],
        &["prepare"],
        &["lookup", "flow.py"],
        &["lookup", "flow.py", "--json"],
        &["download", "flow.py"],
        &["download", "flow.py", "--json"],
        &["refresh", "flow.py", "--store", "js"],
        &["cache", "ls"],
        &["cache", "ls", "--json"],
        &["cache", "gc", "--max-size", "1G"],
        &["module", "scan", site],
        &["module", "scan", site, "--json"],
        &["module", "describe", "flow.py"],
    ];
    for args in commands {
        let output = with_closed_stdout(dir, args, &env)?;
        assert_quiet(&format!("{args:?}"), &output);
    }
    Ok(())
}

#[test]
fn multi_line_output_piped_to_head_ends_quietly() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let site = dir.join("site-packages");
    // Enough distributions that the pretty report outgrows a pipe's buffer before head exits.
    for index in 0..3000 {
        let dist = site.join(format!("distribution_number_{index}-1.0.dist-info"));
        fs::create_dir_all(&dist)?;
        fs::write(
            dist.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: distribution_number_{index}\nVersion: 1.0\n"),
        )?;
        fs::write(dist.join("RECORD"), format!("module_{index}.py,,\n"))?;
    }
    let output = piped_to_head(dir, "module scan site-packages", &[])?;
    assert_quiet("module scan | head -1", &output);
    assert_eq!(String::from_utf8(output.stdout)?.lines().count(), 1);
    Ok(())
}
