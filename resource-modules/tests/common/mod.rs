//! Helpers shared by the integration tests: the base interpreter, temporary trees, and one
//! virtualenv with real installs shared by every test (built once, under Cargo's target tmp dir).
#![allow(dead_code)] // Each test binary uses a different part.

use std::error::Error;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use resource_modules::env::find_on_path;
use resource_modules::{FactsCache, InterpreterChoice, PythonEnv};

pub(crate) type TestResult<T = ()> = Result<T, Box<dyn Error>>;

/// The environment the tests hand the interpreter: enough to start it (a `pyenv` shim needs
/// `PATH`), and nothing that would make results depend on the caller (`VIRTUAL_ENV`,
/// `PYTHONPATH`).
pub(crate) fn test_env() -> PythonEnv {
    PythonEnv::from_vars(|name| match name {
        "PATH" | "HOME" | "PYENV_ROOT" | "PYENV_VERSION" | "LANG" => std::env::var(name).ok(),
        _ => None,
    })
}

/// `python3` on `PATH`. The tests need it: they fail, not skip, without it.
pub(crate) fn base_python() -> TestResult<PathBuf> {
    let path = std::env::var("PATH").ok();
    find_on_path("python3", path.as_deref())
        .ok_or_else(|| "these tests need python3 on PATH, and there is none".into())
}

pub(crate) fn base_choice() -> TestResult<InterpreterChoice> {
    Ok(InterpreterChoice::new(&base_python()?, test_env()))
}

/// One in-memory facts cache per test binary, so each interpreter is asked once.
pub(crate) fn shared_cache() -> FactsCache {
    static CACHE: OnceLock<FactsCache> = OnceLock::new();
    CACHE.get_or_init(FactsCache::in_memory).clone()
}

/// Writes `files` (relative paths; a trailing `/` makes a directory) under `root`, each file
/// holding `pass`.
pub(crate) fn write_tree(root: &Path, files: &[&str]) -> TestResult {
    for rel in files {
        let path = root.join(rel);
        if rel.ends_with('/') {
            std::fs::create_dir_all(&path)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, "pass\n")?;
    }
    Ok(())
}

/// Runs a command, failing with its output if it fails.
pub(crate) fn run(command: &mut Command) -> TestResult<String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A command with exactly the test environment.
pub(crate) fn python_command(python: &Path) -> Command {
    let mut command = Command::new(python);
    command.env_clear().envs(test_env().vars());
    command.env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    command.env("PIP_NO_INPUT", "1");
    command
}

/// Where Python itself finds `name` with `extra` first on `sys.path` (this imports the parent
/// packages, which in these tests are our own files holding `pass`).
pub(crate) fn python_find_spec_origin(
    python: &Path,
    extra: &Path,
    name: &str,
) -> TestResult<String> {
    let script = "import sys, importlib.util\n\
                  sys.path.insert(0, sys.argv[1])\n\
                  spec = importlib.util.find_spec(sys.argv[2])\n\
                  print(spec.origin if spec else '')";
    let out = run(python_command(python)
        .arg("-c")
        .arg(script)
        .arg(extra)
        .arg(name))?;
    Ok(out.trim().to_owned())
}

/// Bump when the fixture's content changes, so that a stale one is rebuilt.
const FIXTURE_VERSION: u32 = 1;

/// The shared virtualenv and the projects installed into it.
#[derive(Debug)]
pub(crate) struct Fixture {
    pub root: PathBuf,
    pub venv: PathBuf,
    pub python: PathBuf,
    pub site_packages: PathBuf,
    /// src layout, installed editable with a path `.pth` (`__editable__.edpkg-2.0.pth`).
    pub edpkg_root: PathBuf,
    /// flat layout, installed editable with setuptools' finder (`MAPPING`).
    pub fpkg_root: PathBuf,
    /// installed with `setup.py develop`: an `.egg-link`.
    pub legpkg_root: PathBuf,
}

/// The fixture, built once per fixture version and shared by every test binary and run.
pub(crate) fn fixture() -> TestResult<&'static Fixture> {
    static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| build_fixture().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| e.clone().into())
}

fn build_fixture() -> TestResult<Fixture> {
    // `RESOURCE_MODULES_FIXTURE_DIR` puts it elsewhere (say, to try another `python3`).
    let base = std::env::var_os("RESOURCE_MODULES_FIXTURE_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    std::fs::create_dir_all(&base)?;
    let root = base.join(format!("resource-modules-venv-v{FIXTURE_VERSION}"));
    // Another test binary may be building it: take turns.
    let lock = File::create(base.join(format!("resource-modules-venv-v{FIXTURE_VERSION}.lock")))?;
    lock.lock()?;
    let python = root.join("venv/bin/python");
    let fixture = Fixture {
        venv: root.join("venv"),
        site_packages: PathBuf::new(),
        edpkg_root: root.join("projects/edpkg/src"),
        fpkg_root: root.join("projects/fpkg"),
        legpkg_root: root.join("projects/legpkg"),
        python: python.clone(),
        root: root.clone(),
    };
    // `ready` holds the directory the fixture was built in: its `.pth` files and egg links name
    // its projects by absolute path, so a fixture copied or moved with its target directory is
    // rebuilt, as is one whose interpreter no longer runs (its base Python was removed).
    let ready = root.join("ready");
    let built_here =
        std::fs::read(&ready).is_ok_and(|built_in| built_in == root.as_os_str().as_encoded_bytes());
    if !built_here || purelib(&python).is_err() {
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        create(&fixture)?;
        std::fs::write(&ready, root.as_os_str().as_encoded_bytes())?;
    }
    Ok(Fixture {
        site_packages: purelib(&python)?,
        ..fixture
    })
}

fn purelib(python: &Path) -> TestResult<PathBuf> {
    let out = run(python_command(python).args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]))?;
    Ok(PathBuf::from(out.trim()))
}

fn write(path: &Path, text: &str) -> TestResult {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

fn project(dir: &Path, config: &str, files: &[&str]) -> TestResult {
    write_tree(dir, files)?;
    write(&dir.join("fixture.json"), config)?;
    write(
        &dir.join("fixture_backend.py"),
        include_str!("../fixtures/fixture_backend.py"),
    )?;
    write(
        &dir.join("pyproject.toml"),
        "[build-system]\nrequires = []\nbuild-backend = \"fixture_backend\"\nbackend-path = [\".\"]\n",
    )
}

fn create(f: &Fixture) -> TestResult {
    let python3 = base_python()?;
    run(python_command(&python3).args(["-m", "venv"]).arg(&f.venv))?;
    let projects = f.root.join("projects");

    // A normal install: a package, a namespace package, an extension module (never imported).
    let normpkg = projects.join("normpkg");
    project(
        &normpkg,
        r#"{"name": "normpkg", "version": "1.0.0", "topLevel": ["normpkg", "normns", "normfast"], "root": "."}"#,
        &[
            "normpkg/__init__.py",
            "normpkg/tool.py",
            "normns/sub.py",
            "normfast.abi3.so",
        ],
    )?;
    // Editable, src layout, a path `.pth`.
    let edpkg = projects.join("edpkg");
    project(
        &edpkg,
        r#"{"name": "edpkg", "version": "2.0", "topLevel": ["edpkg"], "root": "src", "editableMode": "path"}"#,
        &["src/edpkg/__init__.py", "src/edpkg/tool.py"],
    )?;
    // Editable, flat layout, setuptools' finder; `notes.py` at the root must not become importable.
    project(
        &f.fpkg_root,
        r#"{"name": "fpkg", "version": "0.9", "topLevel": ["fpkg", "fmod"], "root": ".", "editableMode": "finder"}"#,
        &["fpkg/__init__.py", "fpkg/tool.py", "fmod.py", "notes.py"],
    )?;
    let pip = |args: &[&str], dir: &Path| {
        run(python_command(&f.python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-build-isolation",
            ])
            .args(args)
            .arg(dir))
    };
    pip(&[], &normpkg)?;
    pip(&["-e"], &edpkg)?;
    pip(&["-e"], &f.fpkg_root)?;

    // `setup.py develop`: an `.egg-link` and `easy-install.pth` (setuptools ships in 3.11 venvs).
    write_tree(&f.legpkg_root, &["legpkg/__init__.py", "legpkg/tool.py"])?;
    write(
        &f.legpkg_root.join("setup.py"),
        "from setuptools import setup\nsetup(name='legpkg', version='0.4', packages=['legpkg'])\n",
    )?;
    let has_setuptools = python_command(&f.python)
        .args(["-c", "import setuptools"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_setuptools {
        run(python_command(&f.python)
            .current_dir(&f.legpkg_root)
            .args(["setup.py", "-q", "develop"]))?;
    } else {
        // Python 3.12+ virtualenvs come without setuptools: write what `develop` writes.
        let site = purelib(&f.python)?;
        let root = f.legpkg_root.display();
        write(&site.join("legpkg.egg-link"), &format!("{root}\n."))?;
        write(&site.join("easy-install.pth"), &format!("{root}\n"))?;
        let info = f.legpkg_root.join("legpkg.egg-info");
        write(
            &info.join("PKG-INFO"),
            "Metadata-Version: 2.1\nName: legpkg\nVersion: 0.4\n",
        )?;
        write(&info.join("top_level.txt"), "legpkg\n")?;
    }

    // Toil's own virtualenv test: modules placed straight into site-packages.
    write_tree(
        &purelib(&f.python)?,
        &[
            "venvfoo/__init__.py",
            "venvfoo/userScript.py",
            "venvfoo/bar/__init__.py",
            "venvfoo/bar/helper.py",
            "de/__init__.py",
            "de/pen/__init__.py",
            "de/pen/dency.py",
        ],
    )?;
    Ok(())
}
