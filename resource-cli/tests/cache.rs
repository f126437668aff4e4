//! The worker cache through the CLI: one download per node, crash safety under SIGKILL, and
//! eviction that never removes an entry in use.

// The test reports what it measured.
#![allow(clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use resource_store::testing::{HttpFileServer, noise, visible_entries};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const RESOURCE: &str = env!("CARGO_BIN_EXE_resource");

fn resource(cwd: &Path, args: &[&str], env: &[(String, String)]) -> Command {
    let mut command = Command::new(RESOURCE);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(name, value)| (name, value)));
    command
}

fn run(mut command: Command) -> Result<Output, Box<dyn std::error::Error>> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output)
}

/// Creates `path` (relative to `dir`) in a store under `dir` and returns the registry pair.
fn create(
    dir: &Path,
    path: &str,
) -> Result<(String, String, serde_json::Value), Box<dyn std::error::Error>> {
    let output = run(resource(
        dir,
        &["create", path, "--store", "store", "--json"],
        &[],
    ))?;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let name = json["envName"].as_str().ok_or("envName")?.to_owned();
    let value = json["envValue"].as_str().ok_or("envValue")?.to_owned();
    Ok((name, value, json))
}

#[test]
fn sixteen_processes_at_once_download_once() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::write(dir.join("big.bin"), noise(24 << 20, 5))?;
    let (name, value, json) = create(dir, "big.bin")?;
    let path_hash = json["pathHash"].as_str().ok_or("pathHash")?.to_owned();
    let server = HttpFileServer::serve(&dir.join("store/shared"))?;
    // The worker sees the resource at an http URL: rewrite the registered URL.
    let file_url = json["url"].as_str().ok_or("url")?;
    let value = value.replace(file_url, &server.url(&path_hash));
    let root = dir.join("root");
    let env = vec![
        (name, value),
        ("JTRES_ROOT".to_owned(), root.display().to_string()),
    ];

    let children: Vec<Child> = (0..16)
        .map(|_| {
            resource(dir, &["download", "big.bin"], &env)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut paths = Vec::new();
    for child in children {
        let output = child.wait_with_output()?;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        paths.push(String::from_utf8(output.stdout)?.trim().to_owned());
    }
    paths.dedup();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert_eq!(fs::read(&paths[0])?, fs::read(dir.join("big.bin"))?);
    let counts = server.counts(&path_hash);
    assert_eq!(counts.whole_copies(24 << 20), 1, "{counts:?}");
    assert_eq!(visible_entries(&root).len(), 1);
    Ok(())
}

#[test]
fn downloads_killed_at_random_moments_never_leave_a_partial_entry() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::create_dir(dir.join("tree"))?;
    for index in 0..40 {
        fs::write(
            dir.join(format!("tree/part{index:02}.bin")),
            noise(512 << 10, index),
        )?;
    }
    let (name, value, json) = create(dir, "tree")?;
    let content_hash = json["contentHash"]
        .as_str()
        .ok_or("contentHash")?
        .to_owned();
    let root = dir.join("root");
    let env = vec![
        (name, value),
        ("JTRES_ROOT".to_owned(), root.display().to_string()),
    ];
    let entry = root.join(&content_hash);

    // How long one whole download takes here, to spread the kills over it.
    let started = Instant::now();
    run(resource(dir, &["download", "tree"], &env))?;
    let full = started.elapsed();
    run(resource(dir, &["cache", "gc", "--max-size", "0"], &env))?;

    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut completed = 0;
    for _ in 0..100 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = Duration::from_micros(state % (full.as_micros() as u64 + 1));
        let mut child = resource(dir, &["download", "tree"], &env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        thread::sleep(delay);
        child.kill()?;
        child.wait()?;
        if entry.exists() {
            // Whatever is visible under the final name is complete and correct.
            for index in 0..40 {
                let name = format!("part{index:02}.bin");
                assert_eq!(
                    fs::read(entry.join(&name))?,
                    fs::read(dir.join("tree").join(&name))?
                );
            }
            completed += 1;
            run(resource(dir, &["cache", "gc", "--max-size", "0"], &env))?;
        }
    }
    let output = run(resource(dir, &["download", "tree"], &env))?;
    assert_eq!(
        PathBuf::from(String::from_utf8(output.stdout)?.trim()),
        entry
    );
    run(resource(dir, &["cache", "gc", "--max-size", "1T"], &env))?;
    assert_eq!(
        visible_entries(&root),
        [content_hash],
        "temporaries of killed downloads remain"
    );
    eprintln!("{completed} of 100 killed downloads had finished");
    Ok(())
}

#[test]
fn gc_evicts_least_recently_used_and_never_an_entry_in_use() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let root = dir.join("root");
    let mut env = vec![("JTRES_ROOT".to_owned(), root.display().to_string())];
    let mut hashes = Vec::new();
    for (index, name) in ["a.bin", "b.bin", "c.bin"].iter().enumerate() {
        fs::write(dir.join(name), noise(1 << 20, index as u64 + 10))?;
        let (var, value, json) = create(dir, name)?;
        env.push((var, value));
        hashes.push(
            json["contentHash"]
                .as_str()
                .ok_or("contentHash")?
                .to_owned(),
        );
    }
    for name in ["a.bin", "b.bin", "c.bin", "a.bin"] {
        run(resource(dir, &["download", name], &env))?;
        thread::sleep(Duration::from_millis(20));
    }
    let listed: serde_json::Value =
        serde_json::from_slice(&run(resource(dir, &["cache", "ls", "--json"], &env))?.stdout)?;
    let order: Vec<&str> = listed
        .as_array()
        .ok_or("ls --json is an array")?
        .iter()
        .filter_map(|entry| entry["contentHash"].as_str())
        .collect();
    assert_eq!(
        order,
        [&hashes[1], &hashes[2], &hashes[0]],
        "least recently used first"
    );

    // b is the least recently used: a limit of two entries evicts it alone.
    let report: serde_json::Value = serde_json::from_slice(
        &run(resource(
            dir,
            &["cache", "gc", "--max-size", "2M", "--json"],
            &env,
        ))?
        .stdout,
    )?;
    assert_eq!(report["evicted"], serde_json::json!([hashes[1]]));
    assert_eq!(visible_entries(&root), {
        let mut kept = vec![hashes[0].clone(), hashes[2].clone()];
        kept.sort();
        kept
    });

    // a is held by a running user: gc to zero keeps it, and so does clean.
    let mut holder = resource(
        dir,
        &["download", "a.bin", "--hold", "--", "sleep", "30"],
        &env,
    )
    .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed: serde_json::Value =
            serde_json::from_slice(&run(resource(dir, &["cache", "ls", "--json"], &env))?.stdout)?;
        let held = listed.as_array().is_some_and(|entries| {
            entries
                .iter()
                .any(|entry| entry["contentHash"] == hashes[0].as_str() && entry["inUse"] == true)
        });
        if held {
            break;
        }
        assert!(Instant::now() < deadline, "the holder never took its lock");
        thread::sleep(Duration::from_millis(20));
    }
    let report: serde_json::Value = serde_json::from_slice(
        &run(resource(
            dir,
            &["cache", "gc", "--max-size", "0", "--json"],
            &env,
        ))?
        .stdout,
    )?;
    assert_eq!(report["evicted"], serde_json::json!([hashes[2]]));
    assert_eq!(report["keptInUse"], serde_json::json!([hashes[0]]));
    assert_eq!(visible_entries(&root), [hashes[0].clone()]);

    let refused = resource(dir, &["clean"], &env).output()?;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("in use"));
    assert!(root.join(&hashes[0]).join("a.bin").is_file());

    holder.kill()?;
    holder.wait()?;
    run(resource(dir, &["clean"], &env))?;
    assert!(!root.exists());
    Ok(())
}
