//! `resource module …` end to end: a leader saves a module, a worker shell that has only the
//! exported lines localises and runs it with real Python.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const RESOURCE: &str = env!("CARGO_BIN_EXE_resource");

fn leader(cwd: &Path, args: &[&str]) -> Result<Output, std::io::Error> {
    Command::new(RESOURCE).args(args).current_dir(cwd).output()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_owned()
}

/// Runs `script` in a shell that has only PATH, `JTRES_ROOT` and the exported lines.
fn worker(cwd: &Path, exports: &str, root: &Path, script: &str) -> Result<Output, std::io::Error> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{exports}\n{script}"))
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("R", RESOURCE)
        .env("JTRES_ROOT", root)
        .output()
}

fn saved(cwd: &Path, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let output = leader(cwd, args)?;
    if !output.status.success() {
        return Err(format!("{args:?}: {}", text(&output.stderr)).into());
    }
    Ok(text(&output.stdout))
}

#[test]
fn a_stand_alone_script_with_a_helper_runs_on_the_worker() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let leader_dir = scratch.path().join("leader/src");
    fs::create_dir_all(&leader_dir)?;
    fs::write(
        leader_dir.join("flow.py"),
        "import sys, helper\nprint('flow', helper.VALUE, sys.argv[1:], sys.path[0])\nsys.exit(7)\n",
    )?;
    fs::write(leader_dir.join("helper.py"), "VALUE = 42\n")?;
    let exports = saved(
        &leader_dir,
        &["module", "save", "flow.py", "--store", "../../store"],
    )?;
    let descriptor = saved(&leader_dir, &["module", "describe", "flow.py"])?;
    assert_eq!(
        descriptor,
        format!("'{}' 'flow' 'False'", leader_dir.display())
    );

    // The leader's copy is gone on the worker: only the store remains.
    fs::rename(scratch.path().join("leader"), scratch.path().join("moved"))?;
    let root = scratch.path().join("root");
    let elsewhere = scratch.path();
    let ran = worker(
        elsewhere,
        &exports,
        &root,
        &format!("\"$R\" module exec {descriptor} -- a 'b c'"),
    )?;
    assert_eq!(ran.status.code(), Some(7), "{}", text(&ran.stderr));
    let out = text(&ran.stdout);
    assert!(out.starts_with("flow 42 ['a', 'b c'] "), "{out}");
    let local_dir = out.rsplit(' ').next().ok_or("no path")?;
    assert!(local_dir.starts_with(&root.display().to_string()), "{out}");

    let localized = worker(
        elsewhere,
        &exports,
        &root,
        &format!("\"$R\" module localize {descriptor} --json"),
    )?;
    let json: serde_json::Value = serde_json::from_str(&text(&localized.stdout))?;
    assert_eq!(json["dirPath"], local_dir);
    assert_eq!(json["name"], "flow");
    assert_eq!(json["fromVirtualEnv"], false);
    assert_eq!(
        fs::read_to_string(Path::new(local_dir).join(".stash"))?,
        format!("0{}", leader_dir.display())
    );

    let globalized = worker(
        elsewhere,
        &exports,
        &root,
        &format!("\"$R\" module globalize '{local_dir}' flow False"),
    )?;
    assert_eq!(text(&globalized.stdout), descriptor);
    Ok(())
}

#[test]
fn a_module_in_a_package_runs_with_its_local_copy_first_on_the_path() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let pkgs = scratch.path().join("pkgs");
    fs::create_dir_all(pkgs.join("mypkg/sub"))?;
    fs::write(pkgs.join("mypkg/__init__.py"), "")?;
    fs::write(pkgs.join("mypkg/sub/__init__.py"), "")?;
    fs::write(
        pkgs.join("mypkg/sub/mod.py"),
        "import sys, mypkg\nprint(__name__, sys.path[0], mypkg.__file__)\n",
    )?;
    let exports = saved(
        &pkgs,
        &[
            "module",
            "save",
            "-m",
            "mypkg.sub.mod",
            "--store",
            "../store",
        ],
    )?;
    let root = scratch.path().join("root");
    let ran = worker(
        scratch.path(),
        &exports,
        &root,
        &format!(
            "\"$R\" module exec '{}' mypkg.sub.mod False",
            pkgs.display()
        ),
    )?;
    assert!(ran.status.success(), "{}", text(&ran.stderr));
    let out = text(&ran.stdout);
    let fields: Vec<&str> = out.split(' ').collect();
    assert_eq!(fields.len(), 3, "{out}");
    assert_eq!(fields[0], "__main__");
    assert!(
        fields[1].starts_with(&root.display().to_string()),
        "not the local copy: {out}"
    );
    assert!(
        fields[2].starts_with(fields[1]),
        "mypkg imported from elsewhere: {out}"
    );
    Ok(())
}

#[test]
fn unregistered_and_engine_modules_are_left_as_they_are() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let root = scratch.path().join("root");
    let check = |args: &str| -> Result<String, Box<dyn std::error::Error>> {
        let output = worker(
            scratch.path(),
            "",
            &root,
            &format!("\"$R\" module localize {args}"),
        )?;
        assert!(output.status.success(), "{}", text(&output.stderr));
        Ok(text(&output.stdout))
    };
    assert_eq!(check("/src flow False")?, "'/src' 'flow' 'False'");
    assert_eq!(
        check("/site toil.worker True")?,
        "'/site' 'toil.worker' 'True'"
    );
    let refused = worker(
        scratch.path(),
        "",
        &root,
        "\"$R\" module localize /src flow true",
    )?;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("True or False"),
        "{}",
        text(&refused.stderr)
    );
    Ok(())
}

#[test]
fn discovery_errors_are_reported_as_toil_reports_them() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    fs::write(dir.join("flow.txt"), "")?;
    fs::write(dir.join("collections.py"), "")?;
    fs::create_dir(dir.join("pkg"))?;
    fs::write(dir.join("pkg/__init__.py"), "")?;
    fs::write(dir.join("pkg/inner.py"), "")?;
    for (script, message) in [
        ("flow.txt", "must end in .py or .pyc"),
        ("collections.py", "collections"),
        ("pkg/inner.py", "-m pkg.inner"),
    ] {
        let output = leader(dir, &["module", "describe", script])?;
        assert_eq!(output.status.code(), Some(1), "{script}");
        let error = text(&output.stderr);
        assert!(error.contains(message), "{script}: {error}");
        assert_eq!(error.lines().count(), 1, "{error}");
    }
    Ok(())
}

#[test]
fn a_namespace_package_keeps_its_directory_on_the_worker() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let pkgs = scratch.path().join("pkgs");
    fs::create_dir_all(pkgs.join("ns/sub"))?;
    fs::write(
        pkgs.join("ns/sub/mod.py"),
        "import sys\nprint(__name__, sys.path[0])\n",
    )?;
    let exports = saved(
        &pkgs,
        &["module", "save", "-m", "ns.sub.mod", "--store", "../store"],
    )?;
    fs::rename(&pkgs, scratch.path().join("moved"))?;
    let root = scratch.path().join("root");
    let ran = worker(
        scratch.path(),
        &exports,
        &root,
        &format!("\"$R\" module exec '{}' ns.sub.mod False", pkgs.display()),
    )?;
    assert!(ran.status.success(), "{}", text(&ran.stderr));
    let out = text(&ran.stdout);
    assert!(out.starts_with("__main__ "), "{out}");
    assert!(out.contains(&root.display().to_string()), "{out}");
    Ok(())
}

#[test]
fn a_virtualenv_resource_carries_its_editable_installs() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let venv = scratch.path().join("venv");
    let made = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()?;
    assert!(made.status.success(), "{}", text(&made.stderr));
    let site_packages = fs::read_dir(venv.join("lib"))?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages"))
        .find(|path| path.is_dir())
        .ok_or("no site-packages")?;
    // A module installed normally, importing a package installed in editable mode.
    fs::write(
        site_packages.join("tool.py"),
        "import edpkg\nprint(edpkg.hello())\n",
    )?;
    let source = scratch.path().join("src");
    fs::create_dir_all(source.join("edpkg"))?;
    fs::write(
        source.join("edpkg/__init__.py"),
        "def hello():\n    return 'editable!'\n",
    )?;
    fs::write(
        site_packages.join("__editable__.edpkg-0.1.pth"),
        format!("{}\n", source.display()),
    )?;
    let dist_info = site_packages.join("edpkg-0.1.dist-info");
    fs::create_dir(&dist_info)?;
    fs::write(
        dist_info.join("METADATA"),
        "Metadata-Version: 2.1\nName: edpkg\nVersion: 0.1\n",
    )?;
    fs::write(dist_info.join("top_level.txt"), "edpkg\n")?;
    fs::write(
        dist_info.join("direct_url.json"),
        format!(
            r#"{{"url": "file://{}", "dir_info": {{"editable": true}}}}"#,
            source.display()
        ),
    )?;

    let python = venv.join("bin/python");
    let python = python.to_str().ok_or("path")?;
    let exports = saved(
        scratch.path(),
        &[
            "module", "save", "-m", "tool", "--python", python, "--store", "store",
        ],
    )?;
    assert!(
        exports.contains("toil.resource.VirtualEnvResource"),
        "{exports}"
    );
    // Neither the venv nor the editable source exists on the worker.
    fs::rename(&source, scratch.path().join("src-gone"))?;
    fs::rename(&venv, scratch.path().join("venv-gone"))?;
    let root = scratch.path().join("root");
    let ran = worker(
        scratch.path(),
        &exports,
        &root,
        &format!("\"$R\" module exec '{}' tool True", site_packages.display()),
    )?;
    assert!(ran.status.success(), "{}", text(&ran.stderr));
    assert_eq!(text(&ran.stdout), "editable!");
    Ok(())
}
