//! Our discovery against real Toil's `ModuleDescriptor.forModule`, `_resourcePath` and
//! `_getResourceClass`, on the same trees and the same interpreter.
//!
//! The interpreter with Toil is `RESOURCE_TEST_PYTHON` (set by `cargo xtask test`), else the
//! project's `.tools/py/bin/python` that xtask builds. Without either these tests fail and say so.

mod common;

use std::path::{Path, PathBuf};

use common::{TestResult, python_command, test_env, write_tree};
use resource_modules::{Discoverer, FactsCache, InterpreterChoice, ModuleSource};

/// Asks Toil about `__main__` (when run as a script or with `-m`) or about an imported name.
const DRIVER: &str = r#"import json, sys
def _describe(name):
    from toil.resource import ModuleDescriptor
    try:
        d = ModuleDescriptor.forModule(name)
    except BaseException as e:
        return {"error": str(e)}
    out = {"dirPath": d.dirPath, "name": d.name, "fromVirtualEnv": d.fromVirtualEnv}
    try:
        out["resourcePath"] = d._resourcePath
        out["resourceClass"] = d._getResourceClass().__name__
    except BaseException as e:
        out["resourceError"] = str(e)
    return out
if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--import":
    import importlib
    sys.path.insert(0, sys.argv[2])
    importlib.import_module(sys.argv[3])
    print("TOIL-RESULT " + json.dumps(_describe(sys.argv[3])))
elif __name__ == "__main__":
    print("TOIL-RESULT " + json.dumps(_describe("__main__")))
"#;

fn toil_python() -> TestResult<PathBuf> {
    if let Some(python) = std::env::var_os("RESOURCE_TEST_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/py/bin/python");
    if tools.exists() {
        return Ok(tools);
    }
    Err(
        "these tests need Python with Toil: run `cargo xtask test`, or set RESOURCE_TEST_PYTHON"
            .into(),
    )
}

enum How {
    Script(&'static str),
    Main(&'static str),
    Imported(&'static str, &'static str),
}

/// What Toil says: its JSON, or the error text when it could not even start.
fn ask_toil(python: &Path, dir: &Path, how: &How) -> TestResult<serde_json::Value> {
    let mut command = python_command(python);
    command.current_dir(dir);
    match how {
        How::Script(path) => command.arg(path),
        How::Main(name) => command.args(["-m", name]),
        How::Imported(_, name) => command.args(["-c", DRIVER, "--import"]).arg(dir).arg(name),
    };
    let output = command.output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().find_map(|l| l.strip_prefix("TOIL-RESULT ")) {
        Some(json) => Ok(serde_json::from_str(json)?),
        None => Ok(serde_json::json!({ "error": String::from_utf8_lossy(&output.stderr) })),
    }
}

/// Writes the tree (the module that runs holds the driver), asks Toil and us, and compares.
fn compare(
    files: &[&str],
    driver_in: Option<&str>,
    how: How,
) -> TestResult<(
    serde_json::Value,
    Result<resource_modules::Discovery, String>,
    PathBuf,
)> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().canonicalize()?;
    write_tree(&dir, files)?;
    if let Some(file) = driver_in {
        std::fs::write(dir.join(file), DRIVER)?;
    }
    let python = toil_python()?;
    let toil = ask_toil(&python, &dir, &how)?;
    let choice = InterpreterChoice::new(&python, test_env());
    let ours = Discoverer::new(choice, FactsCache::in_memory(), &dir)
        .discover(&match how {
            How::Script(path) => ModuleSource::Script(path.into()),
            How::Main(name) => ModuleSource::Main(name.into()),
            How::Imported(file, name) => ModuleSource::Imported {
                file: file.into(),
                name: name.into(),
            },
        })
        .map_err(|e| e.to_string());
    // Keep the directory alive until both have looked.
    let kept = tmp.keep();
    Ok((toil, ours, kept))
}

/// Both describe the module the same way and plan the same resource.
fn agree(files: &[&str], driver_in: Option<&str>, how: How) -> TestResult {
    let (toil, ours, dir) = compare(files, driver_in, how)?;
    let ours = ours?;
    assert_eq!(toil.get("error"), None, "Toil failed: {toil}");
    assert_eq!(
        toil["dirPath"],
        ours.descriptor.dir_path.to_string_lossy().as_ref(),
        "{toil}"
    );
    assert_eq!(toil["name"], ours.descriptor.name.as_str());
    assert_eq!(toil["fromVirtualEnv"], ours.descriptor.from_virtual_env);
    let plan = ours.shipping.plan().ok_or("not shipped")?;
    assert_eq!(toil["resourcePath"], plan.path.to_string_lossy().as_ref());
    assert_eq!(
        Some(plan.kind.toil_class()),
        toil["resourceClass"]
            .as_str()
            .map(|c| format!("toil.resource.{c}"))
            .as_deref()
    );
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn script_with_helper() -> TestResult {
    agree(&["helper.py"], Some("flow.py"), How::Script("flow.py"))
}

#[test]
fn module_in_a_package() -> TestResult {
    let files = [
        "foo/__init__.py",
        "foo/bar/__init__.py",
        "foo/bar/helper.py",
    ];
    agree(
        &files,
        Some("foo/userScript.py"),
        How::Main("foo.userScript"),
    )
}

#[test]
fn top_level_module() -> TestResult {
    agree(&["helper.py"], Some("flow.py"), How::Main("flow"))
}

#[test]
fn package_main() -> TestResult {
    agree(
        &["app/__init__.py"],
        Some("app/__main__.py"),
        How::Main("app"),
    )
}

#[test]
fn namespace_package() -> TestResult {
    agree(
        &["ns/sub/other.py"],
        Some("ns/sub/mod.py"),
        How::Main("ns.sub.mod"),
    )
}

#[test]
fn imported_subpackage() -> TestResult {
    let files = ["foo/__init__.py", "foo/bar/__init__.py"];
    agree(
        &files,
        None,
        How::Imported("foo/bar/__init__.py", "foo.bar"),
    )
}

#[test]
fn toil_itself_is_from_the_virtualenv() -> TestResult {
    // Toil's own module, in the Toil virtualenv: fromVirtualEnv on both sides.
    let python = toil_python()?;
    let out = common::run(python_command(&python).args([
        "-c",
        DRIVER,
        "--import",
        "/nonexistent",
        "toil.resource",
    ]))?;
    let json = out
        .lines()
        .find_map(|l| l.strip_prefix("TOIL-RESULT "))
        .ok_or("no result")?;
    let toil: serde_json::Value = serde_json::from_str(json)?;
    let file = common::run(
        python_command(&python).args(["-c", "import toil.resource as r; print(r.__file__)"]),
    )?;
    let choice = InterpreterChoice::new(&python, test_env());
    let source = ModuleSource::Imported {
        file: PathBuf::from(file.trim()),
        name: "toil.resource".into(),
    };
    let ours = Discoverer::new(choice, FactsCache::in_memory(), Path::new("/"))
        .with_engine_prefix("")
        .discover(&source)?;
    assert_eq!(toil["fromVirtualEnv"], true);
    assert!(ours.descriptor.from_virtual_env);
    assert_eq!(
        toil["dirPath"],
        ours.descriptor.dir_path.to_string_lossy().as_ref()
    );
    let plan = ours.shipping.plan().ok_or("not shipped")?;
    assert_eq!(toil["resourcePath"], plan.path.to_string_lossy().as_ref());
    assert_eq!(toil["resourceClass"], "VirtualEnvResource");
    assert_eq!(plan.kind.toil_class(), "toil.resource.VirtualEnvResource");
    Ok(())
}

#[test]
fn script_inside_a_package() -> TestResult {
    let (toil, ours, dir) = compare(
        &["pkg/__init__.py"],
        Some("pkg/userScript.py"),
        How::Script("pkg/userScript.py"),
    )?;
    let toil_error = toil["resourceError"]
        .as_str()
        .ok_or(format!("Toil accepted it: {toil}"))?;
    let ours = ours.err().ok_or("we accepted it")?;
    // The same sentence up to the hint; Toil's hint itself is wrong (it names the package
    // directory and a path as the module), ours is the command that works.
    let (toil_text, _) = toil_error.split_once(" via: ").ok_or(toil_error)?;
    assert!(ours.contains(toil_text), "{ours:?} vs {toil_text:?}");
    assert!(
        ours.contains(&format!("PYTHONPATH='{}'", dir.display())),
        "{ours}"
    );
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn script_without_py() -> TestResult {
    let (toil, ours, dir) = compare(&[], Some("userScript"), How::Script("userScript"))?;
    let toil_error = toil["error"]
        .as_str()
        .ok_or(format!("Toil accepted it: {toil}"))?;
    assert!(toil_error.contains("The name of a user script/module must end in .py or .pyc."));
    let ours = ours.err().ok_or("we accepted it")?;
    assert!(ours.contains("The name of a user script/module must end in .py or .pyc."));
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn script_named_collections() -> TestResult {
    // Toil cannot even start (its own imports pick up the user's collections.py); we say why.
    let (toil, ours, dir) = compare(&[], Some("collections.py"), How::Script("collections.py"))?;
    assert!(toil.get("error").is_some(), "Toil accepted it: {toil}");
    let ours = ours.err().ok_or("we accepted it")?;
    assert!(ours.contains("The user module 'collections' collides with module 'collections'"));
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
