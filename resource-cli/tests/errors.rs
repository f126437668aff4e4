//! Failures from the operating system, through the real binary: the error names what failed and
//! ends with the OS reason, exactly once; the exit code is 1; nothing partial is left in the store
//! or the cache.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use resource_core::{ContentHash, PathHash};
use resource_store::testing::visible_entries;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const RESOURCE: &str = env!("CARGO_BIN_EXE_resource");

/// Runs `resource ARGS` through bash with `prelude` run first (a `ulimit`, a `trap`), in `cwd`,
/// with exactly `env`.
fn resource_in_bash(
    cwd: &Path,
    prelude: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::io::Result<Output> {
    Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}\nexec \"$RESOURCE\" \"$@\""))
        .arg("resource")
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("RESOURCE", RESOURCE)
        .envs(env.iter().copied())
        .output()
}

/// Checks a failure: exit 1, stdout empty, one line on stderr that starts as the CLI's errors do,
/// names `names` and holds `reason` exactly once.
fn assert_fails_once(output: &Output, names: &str, reason: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "printed to stdout: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("resource: error: "), "{stderr}");
    assert!(stderr.contains(names), "{names} not named: {stderr}");
    assert_eq!(
        stderr.matches(reason).count(),
        1,
        "the reason {reason:?} should appear exactly once: {stderr}"
    );
}

/// Every file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// A registry variable for a directory resource whose archive is the file `object`.
fn registered_dir(leader: &Path, name: &str, object: &Path) -> std::io::Result<(String, String)> {
    let path_hash = PathHash::of_path(leader);
    let content_hash = ContentHash::of_bytes(&fs::read(object)?);
    let value = format!(
        "toil.resource.DirectoryResource:[\"{name}\", \"{path_hash}\", \"file:{}\", \"{content_hash}\"]",
        object.display()
    );
    Ok((format!("JTRES_{path_hash}"), value))
}

/// A full disk without root: bash sets a file-size limit and ignores SIGXFSZ, so that a write past
/// the limit fails with EFBIG ("File too large") instead of killing the process.
const FILE_SIZE_LIMIT: &str = "ulimit -f 1024; trap '' XFSZ";
const TOO_LARGE: &str = "File too large (os error 27)";

#[test]
fn a_full_disk_on_download_names_the_entry_and_the_os_reason_once() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::create_dir(dir.join("pkg"))?;
    fs::write(dir.join("pkg/small.py"), "x = 1\n")?;
    fs::write(dir.join("pkg/d28.bin"), vec![28u8; 3 << 20])?;
    let created = resource_in_bash(dir, "", &["create", "pkg", "--store", "js", "--json"], &[])?;
    assert!(created.status.success(), "{created:?}");
    let json: serde_json::Value = serde_json::from_slice(&created.stdout)?;
    let var = json["envName"].as_str().ok_or("no envName")?;
    let value = json["envValue"].as_str().ok_or("no envValue")?;

    let root = dir.join("root");
    let root_text = root.to_str().ok_or("not UTF-8")?;
    let env = [(var, value), ("JTRES_ROOT", root_text)];
    let output = resource_in_bash(dir, FILE_SIZE_LIMIT, &["download", "pkg"], &env)?;
    // Directory archives hold the entries below the directory, as Toil's do.
    assert_fails_once(&output, "\"d28.bin\"", TOO_LARGE);
    assert!(
        visible_entries(&root).is_empty(),
        "left in the cache: {:?}",
        visible_entries(&root)
    );

    // A single file, written without unpacking, fails the same way.
    fs::write(dir.join("big.bin"), vec![1u8; 3 << 20])?;
    let created = resource_in_bash(
        dir,
        "",
        &["create", "big.bin", "--store", "js", "--json"],
        &[],
    )?;
    let json: serde_json::Value = serde_json::from_slice(&created.stdout)?;
    let var = json["envName"].as_str().ok_or("no envName")?;
    let value = json["envValue"].as_str().ok_or("no envValue")?;
    let env = [(var, value), ("JTRES_ROOT", root_text)];
    let output = resource_in_bash(dir, FILE_SIZE_LIMIT, &["download", "big.bin"], &env)?;
    assert_fails_once(&output, "big.bin", TOO_LARGE);
    assert!(
        visible_entries(&root).is_empty(),
        "left in the cache: {:?}",
        visible_entries(&root)
    );
    Ok(())
}

#[test]
fn a_full_disk_on_create_names_the_reason_once_and_leaves_no_partial_object() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::write(dir.join("big.bin"), vec![3u8; 3 << 20])?;
    fs::create_dir(dir.join("js"))?;
    let output = resource_in_bash(
        dir,
        FILE_SIZE_LIMIT,
        &["create", "big.bin", "--store", "js"],
        &[],
    )?;
    assert_fails_once(&output, "js", TOO_LARGE);
    assert_eq!(
        files_below(&dir.join("js")),
        Vec::<PathBuf>::new(),
        "a partial object is left in the store"
    );
    Ok(())
}

#[test]
fn a_file_name_too_long_in_an_archive_names_the_entry_and_the_reason_once() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    // No file system holds a 300-byte name, so the archive is written by Python's zipfile.
    let long_name = format!("pkg/{}", "a".repeat(300));
    let object = dir.join("archive.zip");
    let script = "import sys, zipfile\n\
                  with zipfile.ZipFile(sys.argv[1], 'w') as z:\n\
                  \x20   z.writestr('pkg/ok.py', 'x = 1\\n')\n\
                  \x20   z.writestr(sys.argv[2], 'y = 2\\n')\n";
    let made = Command::new("python3")
        .args(["-c", script])
        .arg(&object)
        .arg(&long_name)
        .output()?;
    assert!(made.status.success(), "{made:?}");

    let leader = dir.join("leader/pkg");
    let (var, value) = registered_dir(&leader, "pkg", &object)?;
    let root = dir.join("root");
    let root_text = root.to_str().ok_or("not UTF-8")?;
    let leader_text = leader.to_str().ok_or("not UTF-8")?;
    let env = [(var.as_str(), value.as_str()), ("JTRES_ROOT", root_text)];
    let output = resource_in_bash(dir, "", &["download", leader_text], &env)?;
    assert_fails_once(&output, &long_name, "File name too long (os error 36)");
    assert!(
        visible_entries(&root).is_empty(),
        "left in the cache: {:?}",
        visible_entries(&root)
    );
    Ok(())
}

/// The numeric user id, from `id -u`.
fn effective_uid() -> Result<u32, Box<dyn std::error::Error>> {
    let output = Command::new("id").arg("-u").output()?;
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

#[test]
fn permission_denied_on_the_cache_names_the_path_and_the_reason_once() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    fs::write(dir.join("flow.py"), "print(1)\n")?;
    let created = resource_in_bash(
        dir,
        "",
        &["create", "flow.py", "--store", "js", "--json"],
        &[],
    )?;
    assert!(created.status.success(), "{created:?}");
    let json: serde_json::Value = serde_json::from_slice(&created.stdout)?;
    let var = json["envName"].as_str().ok_or("no envName")?;
    let value = json["envValue"].as_str().ok_or("no envValue")?;
    // The store must be readable by whoever runs the download.
    for path in files_below(&dir.join("js")) {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    }
    for sub in ["js", "js/shared"] {
        fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(0o755))?;
    }

    // A root of local copies that the user may not write to. Root may write anywhere, so as
    // root the download runs as the unprivileged user 65534.
    let root = dir.join("root");
    fs::create_dir(&root)?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o555))?;
    let root_text = root.to_str().ok_or("not UTF-8")?;
    let env = [(var, value), ("JTRES_ROOT", root_text)];
    let prelude = if effective_uid()? == 0 {
        "exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \"$RESOURCE\" \"$@\""
    } else {
        ""
    };
    let output = resource_in_bash(dir, prelude, &["download", "flow.py"], &env)?;
    assert_fails_once(&output, root_text, "Permission denied (os error 13)");
    assert!(
        visible_entries(&root).is_empty(),
        "left in the cache: {:?}",
        visible_entries(&root)
    );
    Ok(())
}
