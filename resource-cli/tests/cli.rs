//! End-to-end tests of the `resource` binary: leader and worker in separate processes, the worker
//! seeing only the exported line and `JTRES_ROOT`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use resource_store::testing::visible_entries;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const RESOURCE: &str = env!("CARGO_BIN_EXE_resource");

/// Runs `resource` with exactly the given environment (nothing inherited) in `cwd`.
fn resource(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Output, std::io::Error> {
    Command::new(RESOURCE)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().copied())
        .output()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_owned()
}

/// Runs a shell that has only `exports` evaluated and `JTRES_ROOT` set, and in it `resource ARGS`.
fn worker_shell(
    cwd: &Path,
    exports: &str,
    root: &Path,
    args: &str,
) -> Result<Output, std::io::Error> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{exports}\nexec \"$RESOURCE\" {args}"))
        .current_dir(cwd)
        .env_clear()
        .env("RESOURCE", RESOURCE)
        .env("JTRES_ROOT", root)
        .output()
}

#[test]
fn create_then_download_in_a_shell_with_only_the_exported_line() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let script = "import sys\nprint('h\u{e9}llo', sys.argv)\n";
    fs::write(dir.join("flow.py"), script)?;

    let created = resource(dir, &["create", "flow.py", "--store", "js"], &[])?;
    assert!(created.status.success(), "{}", stderr(&created));
    let exports = stdout(&created);
    assert!(exports.starts_with("export JTRES_"), "{exports}");
    assert_eq!(exports.lines().count(), 1);

    let root = dir.join("root");
    let looked_up = worker_shell(dir, &exports, &root, "lookup flow.py --json")?;
    assert!(looked_up.status.success(), "{}", stderr(&looked_up));
    let json: serde_json::Value = serde_json::from_str(&stdout(&looked_up))?;
    assert_eq!(json["kind"], "file");
    assert_eq!(json["name"], "flow.py");
    let content_hash = json["contentHash"]
        .as_str()
        .ok_or("no contentHash")?
        .to_owned();
    assert_eq!(content_hash, format!("{:x}", md5_of(script.as_bytes())));

    let downloaded = worker_shell(dir, &exports, &root, "download flow.py")?;
    assert!(downloaded.status.success(), "{}", stderr(&downloaded));
    let local = PathBuf::from(stdout(&downloaded));
    assert_eq!(local, root.join(&content_hash).join("flow.py"));
    assert_eq!(fs::read_to_string(&local)?, script);
    assert_eq!(
        visible_entries(&root),
        [content_hash.as_str()],
        "no temporary left"
    );

    // A second download finds it installed.
    let again = worker_shell(dir, &exports, &root, "download flow.py --json")?;
    let json: serde_json::Value = serde_json::from_str(&stdout(&again))?;
    assert_eq!(json["downloaded"], false);
    Ok(())
}

#[test]
fn relative_and_absolute_leader_paths_from_other_directories_find_one_resource() -> TestResult {
    let scratch = tempfile::tempdir()?;
    // The working directory as the kernel reports it: the absolute leader path is built on it.
    let dir = fs::canonicalize(scratch.path())?;
    let leader = dir.join("leader");
    fs::create_dir_all(leader.join("sub"))?;
    fs::write(leader.join("flow.py"), "print(1)\n")?;
    let absolute = leader.join("flow.py");
    let absolute_text = absolute.to_str().ok_or("not UTF-8")?;

    let created = resource(
        &leader,
        &["create", "./flow.py", "--store", "js", "--json"],
        &[],
    )?;
    assert!(created.status.success(), "{}", stderr(&created));
    let json: serde_json::Value = serde_json::from_str(&stdout(&created))?;
    assert_eq!(json["leaderPath"], absolute_text);
    assert_eq!(
        json["pathHash"],
        resource_core::PathHash::of_path(&absolute).as_str()
    );
    let exports = format!(
        "export {}='{}'",
        json["envName"].as_str().ok_or("no envName")?,
        json["envValue"].as_str().ok_or("no envValue")?
    );

    // Creating again by another spelling of the same path names the same resource.
    let again = resource(
        &leader.join("sub"),
        &["create", "../flow.py", "--store", "../js", "--json"],
        &[],
    )?;
    let again: serde_json::Value = serde_json::from_str(&stdout(&again))?;
    assert_eq!(again["pathHash"], json["pathHash"]);
    assert_eq!(again["uploaded"], 0);

    let root = dir.join("root");
    for (cwd, path) in [
        (&dir, absolute_text),
        (&dir, "leader/flow.py"),
        (&leader, "flow.py"),
        (&leader.join("sub"), "../flow.py"),
        (&leader.join("sub"), "./.././flow.py"),
    ] {
        let looked_up = worker_shell(cwd, &exports, &root, &format!("lookup {path} --json"))?;
        assert!(looked_up.status.success(), "{path}: {}", stderr(&looked_up));
        let found: serde_json::Value = serde_json::from_str(&stdout(&looked_up))?;
        assert_eq!(found["leaderPath"], absolute_text, "{path}");
        let downloaded = worker_shell(cwd, &exports, &root, &format!("download {path} --json"))?;
        assert!(
            downloaded.status.success(),
            "{path}: {}",
            stderr(&downloaded)
        );
        let found: serde_json::Value = serde_json::from_str(&stdout(&downloaded))?;
        assert_eq!(found["leaderPath"], absolute_text, "{path}");
    }
    // One resource, installed once.
    assert_eq!(
        visible_entries(&root).len(),
        1,
        "{:?}",
        visible_entries(&root)
    );

    // A path that names another file finds nothing, and the error names the absolute path.
    let missing = worker_shell(&leader.join("sub"), &exports, &root, "lookup flow.py")?;
    assert_eq!(missing.status.code(), Some(1));
    let message = stderr(&missing);
    assert!(
        message.contains(&leader.join("sub/flow.py").display().to_string()),
        "{message}"
    );
    Ok(())
}

#[test]
fn dry_run_lists_the_largest_entries_and_files_with_their_share() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let pkg = dir.join("pkg");
    // `data/` holds 600 KiB in two files; twelve top-level files hold 1 to 12 KiB each.
    fs::create_dir_all(pkg.join("data"))?;
    fs::write(pkg.join("data/a.bin"), vec![1u8; 400 << 10])?;
    fs::write(pkg.join("data/b.bin"), vec![2u8; 200 << 10])?;
    for index in 1..=12u64 {
        fs::write(
            pkg.join(format!("f{index:02}.py")),
            vec![b'x'; (index << 10) as usize],
        )?;
    }
    let total = (600 + 78) << 10;
    let dry = resource(
        dir,
        &["create", "pkg", "--store", "js", "--dry-run", "--json"],
        &[],
    )?;
    assert!(dry.status.success(), "{}", stderr(&dry));
    let json: serde_json::Value = serde_json::from_str(&stdout(&dry))?;
    assert_eq!(json["bytes"], total);
    let names = |key: &str| -> Vec<String> {
        json[key]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|entry| entry["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let entries = names("largestEntries");
    assert_eq!(entries.len(), 10);
    assert_eq!(entries[0], "data");
    assert_eq!(entries[1..4], ["f12.py", "f11.py", "f10.py"]);
    let files = names("largestFiles");
    assert_eq!(files.len(), 10);
    assert_eq!(files[..3], ["data/a.bin", "data/b.bin", "f12.py"]);
    assert_eq!(json["largestEntries"][0]["bytes"], 600 << 10);
    // 600 of 678 KiB, to one decimal.
    assert_eq!(json["largestEntries"][0]["share"], 88.5);
    assert_eq!(json["largestFiles"][0]["share"], 59.0);
    assert!(!dir.join("js").exists(), "a dry run stores nothing");

    let text = resource(dir, &["create", "pkg", "--store", "js", "--dry-run"], &[])?;
    let text = stdout(&text);
    assert!(text.contains("largest top-level entries:"), "{text}");
    assert!(text.contains("88.5%"), "{text}");
    assert!(text.contains("largest files:"), "{text}");
    assert!(text.contains("data/a.bin"), "{text}");
    Ok(())
}

fn md5_of(bytes: &[u8]) -> impl std::fmt::LowerHex {
    struct Hex(String);
    impl std::fmt::LowerHex for Hex {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    Hex(resource_core::ContentHash::of_bytes(bytes).to_string())
}

#[test]
fn create_json_has_the_contract_keys_and_skips_identical_uploads() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::write(dir.join("data.bin"), vec![7u8; 3 << 20])?;
    let store_url = format!("file:{}", dir.join("js").display());
    let run = || {
        resource(
            dir,
            &["create", "data.bin", "--store", &store_url, "--json"],
            &[],
        )
    };

    let first: serde_json::Value = serde_json::from_str(&stdout(&run()?))?;
    for key in [
        "kind",
        "name",
        "pathHash",
        "url",
        "contentHash",
        "envName",
        "envValue",
    ] {
        assert!(first[key].is_string(), "missing {key} in {first}");
    }
    assert_eq!(first["uploaded"], 1);
    assert_eq!(
        first["envName"],
        format!("JTRES_{}", first["pathHash"].as_str().ok_or("")?)
    );
    let stored = dir
        .join("js/shared")
        .join(first["pathHash"].as_str().ok_or("")?);
    assert_eq!(first["url"], format!("file:{}", stored.display()));
    assert_eq!(fs::read(&stored)?.len(), 3 << 20);

    let second: serde_json::Value = serde_json::from_str(&stdout(&run()?))?;
    assert_eq!(second["uploaded"], 0);
    assert_eq!(second["envValue"], first["envValue"]);

    // Changed content is uploaded again under the same name.
    fs::write(dir.join("data.bin"), b"changed")?;
    let third: serde_json::Value = serde_json::from_str(&stdout(&run()?))?;
    assert_eq!(third["uploaded"], 1);
    assert_eq!(fs::read(&stored)?, b"changed");
    Ok(())
}

#[test]
fn a_corrupted_object_fails_the_download_and_installs_nothing() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::write(dir.join("flow.py"), "print(1)\n")?;
    let created = resource(dir, &["create", "flow.py", "--store", "js", "--json"], &[])?;
    let json: serde_json::Value = serde_json::from_str(&stdout(&created))?;
    let object = dir
        .join("js/shared")
        .join(json["pathHash"].as_str().ok_or("")?);
    fs::write(&object, "print(2)\n")?;

    let exports = format!(
        "export {}='{}'",
        json["envName"].as_str().ok_or("")?,
        json["envValue"].as_str().ok_or("")?
    );
    let root = dir.join("root");
    let downloaded = worker_shell(dir, &exports, &root, "download flow.py")?;
    assert_eq!(downloaded.status.code(), Some(1));
    let message = stderr(&downloaded);
    assert!(message.contains("content hash mismatch"), "{message}");
    assert!(message.contains(&object.display().to_string()), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        visible_entries(&root).is_empty(),
        "left behind: {:?}",
        visible_entries(&root)
    );
    Ok(())
}

/// One refused command: its arguments, extra environment, exit code, and a fragment of the error.
struct Refusal<'a> {
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    code: i32,
    message: &'a str,
}

fn check(dir: &Path, case: &Refusal<'_>) -> TestResult {
    let output = resource(dir, case.args, case.env)?;
    let message = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(case.code),
        "{:?}: {message}",
        case.args
    );
    assert!(message.contains(case.message), "{:?}: {message}", case.args);
    assert!(
        stdout(&output).is_empty(),
        "{:?} printed to stdout",
        case.args
    );
    Ok(())
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_the_store_untouched() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::create_dir(dir.join("js"))?;
    let mismatched = format!(
        "toil.resource.FileResource:[\"x\", \"{}\", \"file:/nope\", \"{}\"]",
        "0".repeat(32),
        "1".repeat(32)
    );
    // Leader paths are hashed in their absolute form, as the working directory makes it.
    let leader_x = fs::canonicalize(dir)?.join("x");
    let lookup_var = format!("JTRES_{}", resource_core::PathHash::of_path(&leader_x));
    let escaping = format!(
        "toil.resource.FileResource:[\"../evil\", \"{}\", \"file:/etc/hostname\", \"{}\"]",
        resource_core::PathHash::of_path(&leader_x),
        "1".repeat(32)
    );
    let root = dir.join("root").display().to_string();
    let cases = [
        Refusal {
            args: &["create", "missing.py", "--store", "js"],
            env: &[],
            code: 1,
            message: "missing.py: no such file or directory",
        },
        // Reading /proc/self/mem at offset 0 fails even for root: a file that exists but cannot be read.
        Refusal {
            args: &["create", "/proc/self/mem", "--store", "js"],
            env: &[],
            code: 1,
            message: "/proc/self/mem",
        },
        Refusal {
            args: &["create", "/dev/null", "--store", "js"],
            env: &[],
            code: 1,
            message: "/dev/null: not a regular file or directory",
        },
        Refusal {
            args: &["create", "missing.py", "--store", "s3x://bucket"],
            env: &[],
            code: 1,
            message: "accepted forms",
        },
        Refusal {
            args: &["create", ".", "--store", "js", "--kind", "file"],
            env: &[],
            code: 1,
            message: "not a regular file",
        },
        Refusal {
            args: &["create", "x", "--store", "js", "--kind", "bogus"],
            env: &[],
            code: 2,
            message: "bogus",
        },
        Refusal {
            args: &["create", "x"],
            env: &[],
            code: 2,
            message: "--store",
        },
        Refusal {
            args: &["frobnicate"],
            env: &[],
            code: 2,
            message: "frobnicate",
        },
        Refusal {
            args: &["lookup", "x"],
            env: &[],
            code: 1,
            message: "no resource is registered",
        },
        Refusal {
            args: &["lookup", "x"],
            env: &[(&lookup_var, &mismatched)],
            code: 1,
            message: "pathHash",
        },
        Refusal {
            args: &["lookup", "x"],
            env: &[(&lookup_var, "toil.resource.Nope:[]")],
            code: 1,
            message: "unknown resource class",
        },
        Refusal {
            args: &["download", "x", "--root", &root],
            env: &[(&lookup_var, &escaping)],
            code: 1,
            message: "../evil",
        },
        Refusal {
            args: &["download", "x"],
            env: &[],
            code: 1,
            message: "no resource is registered",
        },
    ];
    for case in &cases {
        check(dir, case)?;
    }
    assert_eq!(visible_entries(&dir.join("js")), ["shared"]);
    assert!(
        visible_entries(&dir.join("js/shared")).is_empty(),
        "{:?}",
        visible_entries(&dir.join("js/shared"))
    );
    assert!(!dir.join("root").join("1".repeat(32)).exists());
    Ok(())
}

#[test]
fn prepare_and_clean_manage_the_root() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let tmp = dir.display().to_string();
    let prepared = resource(dir, &["prepare"], &[("TMPDIR", &tmp)])?;
    let line = stdout(&prepared);
    let root = line
        .strip_prefix("export JTRES_ROOT='")
        .and_then(|rest| rest.strip_suffix('\''))
        .ok_or(line.clone())?;
    assert!(Path::new(root).is_dir());
    assert!(root.starts_with(&tmp));

    // An existing root is kept, as Toil's prepareSystem keeps it.
    let again = resource(dir, &["prepare"], &[("TMPDIR", &tmp), ("JTRES_ROOT", root)])?;
    assert_eq!(stdout(&again), line);

    let cleaned = resource(dir, &["clean"], &[("JTRES_ROOT", root)])?;
    assert!(cleaned.status.success(), "{}", stderr(&cleaned));
    assert!(!Path::new(root).exists());
    Ok(())
}
