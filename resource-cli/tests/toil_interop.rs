//! Interoperability with real Toil, both ways (the Toil of `RESOURCE_TEST_PYTHON`, which
//! `cargo xtask test` installs into `.tools/py`).
//!
//! 1. Ours → Toil: `resource create` / `resource module save` write into a job store that Toil
//!    itself initialised as a `FileJobStore`; Toil's worker (a Python process that has only the
//!    exported lines) looks the resource up, localises, downloads, imports and calls the module.
//! 2. Toil → ours: Toil's leader saves and registers a module; our `download`, `module localize`
//!    and `module exec` in a shell that has only those variables give what Toil's worker gives.
//! 3. Same answers: `resource module describe` agrees with Toil's `ModuleDescriptor.forModule`
//!    on the scenarios of Toil's own resource tests, failing where Toil fails.
//! 4. Same bytes: our wire form is the string Toil's `pickle()` makes, and Toil accepts it.
//!
//! The Python drivers live in `tests/toil_support/`; each takes one JSON argument and prints one
//! JSON report as its last line of output.

// A test reports what it saw and measured.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::error::Error;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use resource_core::ContentHash;
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn Error>>;
type Res<T> = Result<T, Box<dyn Error>>;

const RESOURCE: &str = env!("CARGO_BIN_EXE_resource");
const SUPPORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/toil_support");
const TARGET_TMP: &str = env!("CARGO_TARGET_TMPDIR");
/// Bump when the virtualenv fixture's contents change, so that a cached one is rebuilt.
const FIXTURE_REVISION: &str = "1";
/// Arguments the shipped modules are run with on the workers.
const RUN_ARGS: [&str; 3] = ["a", "b c", "\u{fc}'\""];

/// Builds a `Vec<OsString>` from strings and paths alike.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        vec![$(OsStr::new(&$arg).to_os_string()),*]
    };
}

// ---------------------------------------------------------------------------------------------
// The user code shipped in these tests (named as in Toil's own resourceTest).

/// A module that imports `dep`, answers a question when imported and, run as `__main__`, prints
/// where it runs from relative to the root of local copies, then exits with 3.
fn user_module(import_dep: &str) -> String {
    format!(
        "import os, sys\n\
         {import_dep}\n\
         \n\
         def answer():\n    return '%s %s' % (__name__, dep.VALUE)\n\
         \n\
         if __name__ == '__main__':\n    \
             root = os.environ['JTRES_ROOT']\n    \
             print(__name__, dep.VALUE, sys.argv[1:], os.path.relpath(__file__, root),\n          \
             os.path.relpath(sys.path[0], root))\n    \
             sys.exit(3)\n"
    )
}

/// A stand-alone script with a helper and some data (a Unicode name, a space, an empty dir).
fn write_stand_alone(dir: &Path) -> Res<()> {
    write(dir, "userScript.py", &user_module("import helper as dep"))?;
    write(dir, "helper.py", "VALUE = 42\n")?;
    write(dir, "data/gr\u{fc}\u{df}e.txt", "hallo\n")?;
    write(dir, "data/with space.txt", "x y\n")?;
    fs::create_dir_all(dir.join("data/empty"))?;
    Ok(())
}

/// Package `foo` with module `foo.userScript` and subpackage `foo.bar`.
fn write_package(dir: &Path) -> Res<()> {
    write(dir, "foo/__init__.py", "")?;
    write(
        dir,
        "foo/userScript.py",
        &user_module("from foo.bar import helper as dep"),
    )?;
    write(dir, "foo/bar/__init__.py", "")?;
    write(dir, "foo/bar/helper.py", "VALUE = 7\n")?;
    Ok(())
}

/// The virtualenv's modules: `vpkg.mod` depends on `de.pen.dency`, both in site-packages.
fn write_venv_modules(site_packages: &Path) -> Res<()> {
    write(site_packages, "vpkg/__init__.py", "")?;
    write(
        site_packages,
        "vpkg/mod.py",
        &user_module("from de.pen import dency as dep"),
    )?;
    write(site_packages, "de/__init__.py", "")?;
    write(site_packages, "de/pen/__init__.py", "")?;
    write(site_packages, "de/pen/dency.py", "VALUE = 99\n")?;
    Ok(())
}

const TOOL: &str = "def answer():\n    return 'tool ' + __name__\n";

fn write(dir: &Path, relative: &str, contents: &str) -> Res<()> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Toil: its interpreter, its version, and the virtualenv fixture (one per test binary).

struct Toil {
    /// The interpreter that has Toil.
    python: PathBuf,
    /// `toil.version.version`.
    version: String,
    /// The fixture virtualenv's interpreter (it reaches Toil through a `.pth` file).
    venv_python: PathBuf,
    /// The fixture virtualenv's site-packages, holding `vpkg` and `de`.
    site_packages: PathBuf,
    /// Where Toil itself is installed.
    toil_site_packages: PathBuf,
}

fn toil() -> Res<&'static Toil> {
    static TOIL: OnceLock<Result<Toil, String>> = OnceLock::new();
    match TOIL.get_or_init(|| set_up_toil().map_err(|error| error.to_string())) {
        Ok(toil) => Ok(toil),
        Err(error) => Err(error.clone().into()),
    }
}

/// `RESOURCE_TEST_PYTHON`, else `<workspace>/.tools/py/bin/python`.
fn toil_python() -> Res<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the crate has no parent directory")?;
    let fallback = workspace.join(".tools/py/bin/python");
    let from_env = std::env::var_os("RESOURCE_TEST_PYTHON").filter(|value| !value.is_empty());
    from_env
        .iter()
        .map(PathBuf::from)
        .chain([fallback.clone()])
        .find(|python| python.is_file())
        .ok_or_else(|| {
            format!(
                "no Python with Toil: RESOURCE_TEST_PYTHON is {from_env:?} and {} does not \
                 exist; run `cargo xtask test` to install Toil",
                fallback.display()
            )
            .into()
        })
}

fn set_up_toil() -> Res<Toil> {
    let python = toil_python()?;
    let scratch = Scratch::new()?;
    let probe = scratch
        .driver(&python, "init_stores.py", &json!({"stores": []}), "")
        .map_err(|error| {
            format!(
                "{} cannot run Toil; run `cargo xtask test` to install Toil\n{error}",
                python.display()
            )
        })?;
    let version = str_at(&probe, "toil")?.to_owned();
    eprintln!("Toil {version} on Python {}", str_at(&probe, "python")?);

    let key = ContentHash::of_bytes(format!("{FIXTURE_REVISION}\0{}", python.display()).as_bytes())
        .to_string();
    let key = key.get(..12).ok_or("short hash")?;
    let base = Path::new(TARGET_TMP).join("toil-interop");
    let venv = base.join(format!("venv-{key}"));
    let ready = venv.join("fixture.json");
    if !ready.is_file() {
        // Built beside its final name and renamed into place, so a concurrent run sees all or
        // nothing of it.
        fs::create_dir_all(&base)?;
        let building = base.join(format!("building-{key}-{}", std::process::id()));
        if building.exists() {
            fs::remove_dir_all(&building)?;
        }
        let made = scratch.driver(&python, "make_venv.py", &json!({"dir": building}), "")?;
        write_venv_modules(&building.join(str_at(&made, "sitePackages")?))?;
        fs::write(building.join("fixture.json"), made.to_string())?;
        if let Err(error) = fs::rename(&building, &venv) {
            fs::remove_dir_all(&building)?;
            if !ready.is_file() {
                return Err(format!("cannot move the venv fixture into place: {error}").into());
            }
        }
    }
    let made: Value = serde_json::from_str(&fs::read_to_string(&ready)?)?;
    Ok(Toil {
        python,
        version,
        venv_python: venv.join("bin/python"),
        site_packages: venv.join(str_at(&made, "sitePackages")?),
        toil_site_packages: PathBuf::from(str_at(&made, "toilSitePackages")?),
    })
}

// ---------------------------------------------------------------------------------------------
// Processes: our binary on the leader, worker shells, and Toil's drivers.

/// A scratch directory with a `home` and a `tmp` for the processes started in it.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Res<Self> {
        let dir = tempfile::tempdir()?;
        fs::create_dir(dir.path().join("home"))?;
        fs::create_dir(dir.path().join("tmp"))?;
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `resource ARGS` on the leader with only PATH and a private HOME.
    fn ours_output(&self, cwd: &Path, args: Vec<OsString>) -> Res<Output> {
        Ok(Command::new(RESOURCE)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path().join("home"))
            .output()?)
    }

    /// Runs `resource ARGS` on the leader; its stdout, or an error with its stderr.
    fn ours(&self, cwd: &Path, args: Vec<OsString>) -> Res<String> {
        let shown = format!("{args:?}");
        let output = self.ours_output(cwd, args)?;
        if !output.status.success() {
            return Err(format!(
                "resource {shown} failed ({}): {}",
                output.status,
                text(&output.stderr)
            )
            .into());
        }
        Ok(text(&output.stdout))
    }

    /// Runs `script` in a worker shell that has only PATH, `$R` (our binary), `JTRES_ROOT` and
    /// the exported lines.
    fn our_worker(&self, exports: &str, root: &Path, script: &str) -> Res<Output> {
        Ok(Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{exports}\n{script}"))
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("R", RESOURCE)
            .env("JTRES_ROOT", root)
            .output()?)
    }

    /// Like `our_worker`, but the script must succeed; its stdout.
    fn our_worker_ok(&self, exports: &str, root: &Path, script: &str) -> Res<String> {
        let output = self.our_worker(exports, root, script)?;
        if !output.status.success() {
            return Err(format!(
                "worker `{script}` failed ({}): {}",
                output.status,
                text(&output.stderr)
            )
            .into());
        }
        Ok(text(&output.stdout))
    }

    /// Runs a Toil driver from `tests/toil_support` with `python`, in a shell that evaluates
    /// `exports` and has nothing else but PATH, HOME and TMPDIR (all three for Python itself;
    /// TMPDIR also keeps the root `prepareSystem()` makes inside the scratch directory).
    /// Returns its JSON report, or an error with its whole output.
    fn driver(&self, python: &Path, driver: &str, spec: &Value, exports: &str) -> Res<Value> {
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{exports}\nexec \"$0\" \"$@\""))
            .arg(python)
            // -B: no __pycache__, neither in tests/toil_support nor in the trees compared.
            .arg("-B")
            .arg(Path::new(SUPPORT).join(driver))
            .arg(spec.to_string())
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path().join("home"))
            .env("TMPDIR", self.path().join("tmp"))
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!(
                "Toil driver {driver} failed ({}) on {spec}\n--- stderr\n{stderr}\n--- stdout\n{stdout}",
                output.status
            )
            .into());
        }
        let last = stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .ok_or_else(|| format!("Toil driver {driver} printed nothing\n{stderr}"))?;
        serde_json::from_str(last)
            .map_err(|error| format!("Toil driver {driver}: bad report {last:?}: {error}").into())
    }

    /// Initialises a Toil `FileJobStore` at each path, with Toil itself.
    fn toil_stores(&self, toil: &Toil, stores: &[&Path]) -> Res<()> {
        self.driver(
            &toil.python,
            "init_stores.py",
            &json!({ "stores": stores }),
            "",
        )?;
        Ok(())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_owned()
}

fn str_at<'a>(value: &'a Value, key: &str) -> Res<&'a str> {
    value[key]
        .as_str()
        .ok_or_else(|| format!("no string {key:?} in {value}").into())
}

fn utf8(path: &Path) -> Res<&str> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()).into())
}

fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `export NAME='VALUE'` lines for every variable of a JSON object.
fn export_lines(env: &Value) -> Res<String> {
    let env = env.as_object().ok_or("the environment is not an object")?;
    let mut lines = String::new();
    for (name, value) in env {
        let value = value.as_str().ok_or("a variable is not a string")?;
        lines.push_str(&format!("export {name}={}\n", sh_quote(value)));
    }
    Ok(lines)
}

/// The three strings of a module descriptor, quoted for a shell.
fn command_words(command: &[String]) -> String {
    command
        .iter()
        .map(|word| sh_quote(word))
        .collect::<Vec<_>>()
        .join(" ")
}

fn strings(value: &Value) -> Res<Vec<String>> {
    value
        .as_array()
        .ok_or_else(|| format!("not an array: {value}"))?
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("not a string: {item}").into())
        })
        .collect()
}

fn md5_hex(text: &str) -> String {
    ContentHash::of_bytes(text.as_bytes()).to_string()
}

// ---------------------------------------------------------------------------------------------
// Trees of files, compared between leader, Toil's worker and ours.

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

type Tree = BTreeMap<String, Node>;

/// Everything under `dir` by relative path, except `__pycache__` directories.
fn tree(dir: &Path) -> Res<Tree> {
    fn walk(dir: &Path, prefix: &str, tree: &mut Tree) -> Res<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "__pycache__" {
                continue;
            }
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                tree.insert(relative, Node::Link(fs::read_link(entry.path())?));
            } else if kind.is_dir() {
                walk(&entry.path(), &relative, tree)?;
                tree.insert(relative, Node::Dir);
            } else {
                tree.insert(relative, Node::File(fs::read(entry.path())?));
            }
        }
        Ok(())
    }
    let mut found = Tree::new();
    walk(dir, "", &mut found)?;
    Ok(found)
}

/// Fails with the paths that differ between two trees.
fn same_tree(what: &str, left: &Tree, right: &Tree) -> Res<()> {
    if left == right {
        return Ok(());
    }
    let mut lines = vec![format!("{what}: the trees differ (left vs right)")];
    for (path, node) in left {
        match right.get(path) {
            None => lines.push(format!("  only left:  {path} {}", describe_node(node))),
            Some(other) if other != node => lines.push(format!(
                "  differs:    {path} {} vs {}",
                describe_node(node),
                describe_node(other)
            )),
            Some(_) => {}
        }
    }
    for (path, node) in right {
        if !left.contains_key(path) {
            lines.push(format!("  only right: {path} {}", describe_node(node)));
        }
    }
    Err(lines.join("\n").into())
}

fn describe_node(node: &Node) -> String {
    match node {
        Node::Dir => "(dir)".into(),
        Node::File(bytes) => format!(
            "({} bytes: {:?})",
            bytes.len(),
            String::from_utf8_lossy(bytes)
        ),
        Node::Link(target) => format!("(link to {})", target.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Ours → Toil.

#[derive(Debug, Clone, Copy)]
enum Shape {
    File,
    Directory,
    Package,
    VirtualEnv,
}

/// What the leader made with our tool, and what Toil's worker should find.
struct Shipped {
    /// The export line our commands printed.
    exports: String,
    /// The leader path the resource is registered under.
    path: PathBuf,
    /// The module's descriptor, for the module shapes.
    command: Option<[String; 3]>,
    /// The leader's tree as the worker should install it (without `.stash`).
    expected: Tree,
    /// The Toil class and what `answer()` returns.
    class: &'static str,
    answer: &'static str,
    /// A leader directory to move away before the worker runs (only the store remains).
    leader: Option<PathBuf>,
}

/// Ships `shape` with our tool into `store` (a Toil `FileJobStore`), compressed as told.
fn ship_with_ours(
    toil: &Toil,
    scratch: &Scratch,
    shape: Shape,
    store: &Path,
    compression: &str,
) -> Res<Shipped> {
    let leader = scratch.path().join(format!("leader-{compression}"));
    fs::create_dir_all(&leader)?;
    let pack = args!["--store", store, "--compression", compression];
    // `create` of the path and `module save` of the module must print the same line.
    let both = |create: Vec<OsString>, save: Vec<OsString>, cwd: &Path| -> Res<String> {
        let created = scratch.ours(cwd, [create, pack.clone()].concat())?;
        let saved = scratch.ours(cwd, [save, pack.clone()].concat())?;
        if created != saved {
            return Err(format!("create and module save disagree:\n  {created}\n  {saved}").into());
        }
        Ok(created)
    };
    let command = |dir: &Path, name: &str, venv: &str| -> Res<Option<[String; 3]>> {
        Ok(Some([
            utf8(dir)?.to_owned(),
            name.to_owned(),
            venv.to_owned(),
        ]))
    };
    Ok(match shape {
        Shape::File => {
            let tools = leader.join("tools");
            write(&tools, "tool.py", TOOL)?;
            let path = tools.join("tool.py");
            let exports = scratch.ours(&leader, [args!["create", path], pack.clone()].concat())?;
            Shipped {
                exports,
                path,
                command: None,
                expected: Tree::from([("tool.py".to_owned(), Node::File(TOOL.into()))]),
                class: "FileResource",
                answer: "tool tool",
                leader: Some(leader),
            }
        }
        Shape::Directory => {
            let src = leader.join("src");
            write_stand_alone(&src)?;
            let exports = both(
                args!["create", src],
                args![
                    "module",
                    "save",
                    src.join("userScript.py"),
                    "--python",
                    toil.python
                ],
                &leader,
            )?;
            Shipped {
                exports,
                command: command(&src, "userScript", "False")?,
                expected: tree(&src)?,
                path: src,
                class: "DirectoryResource",
                answer: "userScript 42",
                leader: Some(leader),
            }
        }
        Shape::Package => {
            let pkgs = leader.join("pkgs");
            write_package(&pkgs)?;
            let exports = both(
                args!["create", pkgs.join("foo")],
                args![
                    "module",
                    "save",
                    "-m",
                    "foo.userScript",
                    "--python",
                    toil.python
                ],
                &pkgs,
            )?;
            Shipped {
                exports,
                path: pkgs.join("foo"),
                command: command(&pkgs, "foo.userScript", "False")?,
                expected: tree(&pkgs)?,
                class: "DirectoryResource",
                answer: "foo.userScript 7",
                leader: Some(leader),
            }
        }
        Shape::VirtualEnv => {
            let site = &toil.site_packages;
            let exports = both(
                args!["create", site, "--kind", "venv"],
                args![
                    "module",
                    "save",
                    "--file",
                    site.join("vpkg/mod.py"),
                    "--name",
                    "vpkg.mod",
                    "--python",
                    toil.venv_python,
                ],
                scratch.path(),
            )?;
            Shipped {
                exports,
                path: site.clone(),
                command: command(site, "vpkg.mod", "True")?,
                expected: tree(site)?,
                class: "VirtualEnvResource",
                answer: "vpkg.mod 99",
                leader: None,
            }
        }
    })
}

/// Ships `shape` with our tool, stored and deflated, each into a store Toil initialised, and has
/// Toil's worker (a process with only the exported line) download, localise, import and call it.
fn check_ours_to_toil(shape: Shape) -> TestResult {
    let toil = toil()?;
    let scratch = Scratch::new()?;
    let stores = [
        ("stored", scratch.path().join("js-stored")),
        ("deflate", scratch.path().join("js-deflate")),
    ];
    scratch.toil_stores(toil, &[&stores[0].1, &stores[1].1])?;
    for (compression, store) in &stores {
        let what = format!("{shape:?} ({compression})");
        let shipped = ship_with_ours(toil, &scratch, shape, store, compression)
            .map_err(|error| format!("{what}: {error}"))?;
        if let Some(leader) = &shipped.leader {
            fs::rename(leader, leader.with_extension("moved"))?;
        }
        let spec = json!({
            "path": shipped.path,
            "command": shipped.command,
            "call": "answer",
            "file_module": matches!(shape, Shape::File).then_some("tool"),
        });
        let report = scratch
            .driver(&toil.python, "worker.py", &spec, &shipped.exports)
            .map_err(|error| format!("{what}: {error}"))?;
        let at = |key: &str| -> Res<&str> { str_at(&report, key) };

        // Toil found our resource, of the right class, and re-pickles it to our exact bytes.
        assert_eq!(report["class"], shipped.class, "{what}: {report}");
        let mut registered = report["registered"]
            .as_object()
            .ok_or("no registered variables")?
            .clone();
        // prepareSystem() made a root and registered it.
        assert_eq!(
            registered.remove("JTRES_ROOT"),
            Some(report["root"].clone())
        );
        assert_eq!(registered.len(), 1, "{what}: {report}");
        let (name, value) = registered.iter().next().ok_or("nothing registered")?;
        let value = value.as_str().ok_or("not a string")?;
        assert_eq!(
            at("pickle")?,
            value,
            "{what}: Toil re-pickles our wire form"
        );
        let path_hash = md5_hex(utf8(&shipped.path)?);
        assert_eq!(*name, format!("JTRES_{path_hash}"), "{what}");

        // Our object sits where Toil's FileJobStore keeps shared files, under Toil's URL.
        let object = store.join("shared").join(&path_hash);
        let content_hash = ContentHash::of_bytes(&fs::read(&object)?).to_string();
        let fields: Vec<String> =
            serde_json::from_str(value.split_once(':').ok_or("no colon in the wire form")?.1)?;
        assert_eq!(
            fields,
            [
                shipped
                    .path
                    .file_name()
                    .and_then(OsStr::to_str)
                    .ok_or("no name")?
                    .to_owned(),
                path_hash.clone(),
                format!("file:{}", object.display()),
                content_hash.clone(),
            ],
            "{what}: the resource's fields"
        );

        // Toil installed it under its root, by content hash, as the leader had it.
        let root = Path::new(at("root")?);
        let local_dir = root.join(&content_hash);
        assert_eq!(Path::new(at("localDirPath")?), local_dir, "{what}");
        assert_eq!(report["exists"], true, "{what}: {report}");
        let mut expected = shipped.expected;
        match &shipped.command {
            None => {
                assert_eq!(
                    Path::new(at("localPath")?),
                    local_dir.join("tool.py"),
                    "{what}"
                );
            }
            Some(command) => {
                assert_eq!(Path::new(at("localPath")?), local_dir, "{what}");
                let localized = strings(&report["localized"])?;
                assert_eq!(
                    localized,
                    [utf8(&local_dir)?, &command[1], &command[2]],
                    "{what}: Toil's localize()"
                );
                assert_eq!(
                    strings(&report["globalized"])?,
                    command.as_slice(),
                    "{what}: Toil's globalize()"
                );
                let flag = if command[2] == "True" { "1" } else { "0" };
                expected.insert(
                    ".stash".into(),
                    Node::File(format!("{flag}{}", command[0]).into_bytes()),
                );
            }
        }
        same_tree(
            &format!("{what}: leader (left) vs Toil's download (right)"),
            &expected,
            &tree(&local_dir)?,
        )?;

        // Toil imported the module from its local copy and called it.
        assert!(
            at("moduleFile")?.starts_with(utf8(&local_dir)?),
            "{what}: imported from elsewhere: {report}"
        );
        assert_eq!(at("answer")?, shipped.answer, "{what}");
    }
    Ok(())
}

#[test]
fn ours_to_toil_file() -> TestResult {
    check_ours_to_toil(Shape::File)
}

#[test]
fn ours_to_toil_plain_directory() -> TestResult {
    check_ours_to_toil(Shape::Directory)
}

#[test]
fn ours_to_toil_package() -> TestResult {
    check_ours_to_toil(Shape::Package)
}

#[test]
fn ours_to_toil_virtualenv() -> TestResult {
    check_ours_to_toil(Shape::VirtualEnv)
}

/// `resource create ./tools/tool.py` from the leader's working directory hashes the absolute path,
/// as Toil does, so Toil's worker finds it with `Resource.lookup(abspath)`.
#[test]
fn a_relative_leader_path_is_found_by_toils_worker_under_its_absolute_path() -> TestResult {
    let toil = toil()?;
    let scratch = Scratch::new()?;
    let store = scratch.path().join("js");
    scratch.toil_stores(toil, &[&store])?;
    // The working directory as the kernel reports it, which is what both sides make absolute.
    let leader = fs::canonicalize(scratch.path())?.join("leader");
    write(&leader, "tools/tool.py", TOOL)?;
    let exports = scratch.ours(
        &leader,
        args!["create", "./tools/../tools/tool.py", "--store", store],
    )?;
    let absolute = leader.join("tools/tool.py");
    let spec =
        json!({ "path": absolute, "command": null, "file_module": "tool", "call": "answer" });
    let report = scratch.driver(&toil.python, "worker.py", &spec, &exports)?;
    assert_eq!(report["class"], "FileResource", "{report}");
    assert_eq!(report["exists"], true, "{report}");
    assert_eq!(report["answer"], "tool tool", "{report}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Toil → ours.

/// Toil's leader saves `shape` (a file with `FileResource.create`, a module with
/// `ModuleDescriptor.forModule(…).saveAsResourceTo`) and registers it; then Toil's worker and
/// ours, each with only the registered variables, install and run it, with the same results.
fn check_toil_to_ours(shape: Shape) -> TestResult {
    let toil = toil()?;
    let scratch = Scratch::new()?;
    let leader = scratch.path().join("leader");
    let store = scratch.path().join("js");
    let mut python = &toil.python;
    let spec = match shape {
        Shape::File => {
            write(&leader, "tools/tool.py", TOOL)?;
            json!({"store": store, "file": leader.join("tools/tool.py")})
        }
        Shape::Directory => {
            write_stand_alone(&leader.join("src"))?;
            json!({"store": store, "module": "userScript", "dir": leader.join("src")})
        }
        Shape::Package => {
            write_package(&leader.join("pkgs"))?;
            json!({"store": store, "module": "foo.userScript", "dir": leader.join("pkgs")})
        }
        Shape::VirtualEnv => {
            // The leader runs in the virtualenv, where site-packages is on the search path.
            python = &toil.venv_python;
            json!({"store": store, "module": "vpkg.mod"})
        }
    };
    let what = format!("{shape:?}");
    let saved = scratch
        .driver(python, "leader.py", &spec, "")
        .map_err(|error| format!("{what}: Toil's leader: {error}"))?;
    let exports = export_lines(&saved["env"])?;
    let resource_path = str_at(&saved, "resourcePath")?;
    let command = match &saved["command"] {
        Value::Null => None,
        words => Some(strings(words)?),
    };
    if leader.exists() {
        fs::rename(&leader, scratch.path().join("leader.moved"))?;
    }

    // Toil's own worker.
    let toil_worker = scratch
        .driver(
            &toil.python,
            "worker.py",
            &json!({
                "path": resource_path,
                "command": command,
                "run": command.as_ref().map(|_| RUN_ARGS),
            }),
            &exports,
        )
        .map_err(|error| format!("{what}: Toil's worker: {error}"))?;
    assert_eq!(
        toil_worker["class"], saved["class"],
        "{what}: {toil_worker}"
    );
    let toil_root = PathBuf::from(str_at(&toil_worker, "root")?);
    let toil_local = PathBuf::from(str_at(&toil_worker, "localDirPath")?);
    let content_hash = toil_local
        .strip_prefix(&toil_root)?
        .to_str()
        .ok_or("not UTF-8")?
        .to_owned();

    // Ours, in a shell with only the variables Toil registered.
    let root = scratch.path().join("ours-root");
    if let Some(command) = &command {
        let words = command_words(command);
        let localized: Value = serde_json::from_str(&scratch.our_worker_ok(
            &exports,
            &root,
            &format!("\"$R\" module localize {words} --json"),
        )?)?;
        assert_eq!(
            localized,
            json!({
                "dirPath": root.join(&content_hash),
                "name": command[1],
                "fromVirtualEnv": command[2] == "True",
            }),
            "{what}: our localize vs Toil's {}",
            toil_worker["localized"]
        );
        let globalized = scratch.our_worker_ok(
            &exports,
            &root,
            &format!(
                "\"$R\" module globalize {}",
                command_words(&[
                    utf8(&root.join(&content_hash))?.to_owned(),
                    command[1].clone(),
                    command[2].clone(),
                ])
            ),
        )?;
        assert_eq!(globalized, words, "{what}: our globalize");
    }
    let downloaded = scratch.our_worker_ok(
        &exports,
        &root,
        &format!("\"$R\" download {}", sh_quote(resource_path)),
    )?;
    assert_eq!(
        Path::new(&downloaded).strip_prefix(&root)?,
        Path::new(str_at(&toil_worker, "localPath")?).strip_prefix(&toil_root)?,
        "{what}: local paths relative to the roots"
    );
    same_tree(
        &format!("{what}: Toil's copy (left) vs ours (right)"),
        &tree(&toil_local)?,
        &tree(&root.join(&content_hash))?,
    )?;

    // The module runs the same from either copy.
    if let Some(command) = &command {
        let ran = scratch.our_worker(
            &exports,
            &root,
            &format!(
                "\"$R\" module exec {} --python {} -- {}",
                command_words(command),
                sh_quote(utf8(&toil.python)?),
                RUN_ARGS.map(sh_quote).join(" ")
            ),
        )?;
        let toil_ran = &toil_worker["run"];
        assert_eq!(
            (
                text(&ran.stdout),
                ran.status.code().map(i64::from),
                text(&ran.stderr)
            ),
            (
                str_at(toil_ran, "stdout")?.trim_end().to_owned(),
                toil_ran["code"].as_i64(),
                str_at(toil_ran, "stderr")?.trim_end().to_owned()
            ),
            "{what}: our module exec (left) vs python -m after Toil's localize (right)"
        );
        assert_eq!(toil_ran["code"], 3, "{what}: {toil_ran}");
    }
    Ok(())
}

#[test]
fn toil_to_ours_file() -> TestResult {
    check_toil_to_ours(Shape::File)
}

#[test]
fn toil_to_ours_stand_alone_script() -> TestResult {
    check_toil_to_ours(Shape::Directory)
}

#[test]
fn toil_to_ours_package() -> TestResult {
    check_toil_to_ours(Shape::Package)
}

#[test]
fn toil_to_ours_virtualenv() -> TestResult {
    check_toil_to_ours(Shape::VirtualEnv)
}

// ---------------------------------------------------------------------------------------------
// 3. Same answers as ModuleDescriptor.forModule.

/// How the module is loaded: imported by name from a file, run as a script, or run with `-m`.
enum How {
    Import(&'static str, &'static str),
    Script(&'static str),
    Module(&'static str),
}

/// Where a scenario's files are.
enum Base {
    /// A fresh directory holding these files.
    Files(&'static [(&'static str, &'static str)]),
    /// The stand-alone script with its helper.
    StandAlone,
    /// Package `foo`.
    Package,
    /// The virtualenv fixture's site-packages (run with its interpreter).
    VirtualEnv,
    /// Where Toil itself is installed.
    Toil,
}

/// `resource module describe --json` and Toil's `forModule` (then `_resourcePath` and the
/// resource class, where Toil's own tests see the stand-alone-in-a-package error) agree.
fn check_same_answers(label: &str, base: Base, how: How, toil_succeeds: bool) -> TestResult {
    let toil = toil()?;
    let scratch = Scratch::new()?;
    let mut python = &toil.python;
    let dir = match base {
        Base::Files(files) => {
            for (path, contents) in files {
                write(scratch.path().join("case").as_path(), path, contents)?;
            }
            scratch.path().join("case")
        }
        Base::StandAlone => {
            write_stand_alone(&scratch.path().join("case"))?;
            scratch.path().join("case")
        }
        Base::Package => {
            write_package(&scratch.path().join("case"))?;
            scratch.path().join("case")
        }
        Base::VirtualEnv => {
            python = &toil.venv_python;
            toil.site_packages.clone()
        }
        Base::Toil => toil.toil_site_packages.clone(),
    };
    let mut ours = args!["module", "describe", "--json", "--python", python];
    let spec = match how {
        How::Import(file, name) => {
            ours.extend(args!["--file", dir.join(file), "--name", name]);
            json!({"how": "import", "dir": dir, "name": name})
        }
        How::Script(file) => {
            ours.extend(args![dir.join(file)]);
            json!({"how": "script", "path": dir.join(file)})
        }
        How::Module(name) => {
            ours.extend(args!["-m", name]);
            json!({"how": "module", "dir": dir, "name": name})
        }
    };
    let toils = scratch
        .driver(python, "describe.py", &spec, "")
        .map_err(|error| format!("{label}: {error}"))?;
    let output = scratch.ours_output(&dir, ours)?;
    let error = text(&output.stderr);
    assert_eq!(
        toils["ok"], toil_succeeds,
        "{label}: the scenario is not what it claims to be: Toil says {toils}"
    );
    if !toil_succeeds {
        assert_eq!(
            output.status.code(),
            Some(1),
            "{label}: Toil fails ({}) but we say {}",
            toils["error"],
            text(&output.stdout)
        );
        assert_eq!(error.lines().count(), 1, "{label}: {error}");
        return Ok(());
    }
    assert!(
        output.status.success(),
        "{label}: Toil says {toils} but we fail: {error}"
    );
    let ours: Value = serde_json::from_str(&text(&output.stdout))?;
    for key in ["dirPath", "name", "fromVirtualEnv"] {
        assert_eq!(
            ours[key], toils[key],
            "{label}: {key}: ours {ours} vs Toil's {toils}"
        );
    }
    if str_at(&toils, "name")?.starts_with("toil.") {
        assert_eq!(
            ours["ship"],
            Value::Null,
            "{label}: the engine is never shipped"
        );
    } else {
        assert_eq!(
            ours["ship"]["path"], toils["resourcePath"],
            "{label}: {ours}"
        );
        assert_eq!(
            ours["ship"]["toilClass"], toils["resourceClass"],
            "{label}: {ours}"
        );
    }
    Ok(())
}

#[test]
fn same_answers_for_stand_alone_scripts_and_packages() -> TestResult {
    check_same_answers(
        "stand-alone script imported",
        Base::StandAlone,
        How::Import("userScript.py", "userScript"),
        true,
    )?;
    check_same_answers(
        "stand-alone script run as __main__",
        Base::StandAlone,
        How::Script("userScript.py"),
        true,
    )?;
    check_same_answers(
        "package module imported",
        Base::Package,
        How::Import("foo/userScript.py", "foo.userScript"),
        true,
    )?;
    check_same_answers(
        "package module run with -m",
        Base::Package,
        How::Module("foo.userScript"),
        true,
    )?;
    check_same_answers(
        "subpackage imported",
        Base::Package,
        How::Import("foo/bar/__init__.py", "foo.bar"),
        true,
    )
}

#[test]
fn same_answers_for_virtualenv_and_engine_modules() -> TestResult {
    check_same_answers(
        "virtualenv module imported",
        Base::VirtualEnv,
        How::Import("vpkg/mod.py", "vpkg.mod"),
        true,
    )?;
    check_same_answers(
        "virtualenv module run with -m",
        Base::VirtualEnv,
        How::Module("vpkg.mod"),
        true,
    )?;
    check_same_answers(
        "Toil's own toil.resource",
        Base::Toil,
        How::Import("toil/resource.py", "toil.resource"),
        true,
    )
}

#[test]
fn same_failures_as_toil() -> TestResult {
    check_same_answers(
        "stand-alone script in a package, imported (Toil's testStandAloneInPackage)",
        Base::Files(&[
            ("__init__.py", "pass\n"),
            ("userScript.py", "pass\n"),
            ("helper.py", "pass\n"),
        ]),
        How::Import("userScript.py", "userScript"),
        false,
    )?;
    check_same_answers(
        "script inside a package, run as __main__",
        Base::Files(&[("pkg/__init__.py", "pass\n"), ("pkg/inner.py", "pass\n")]),
        How::Script("pkg/inner.py"),
        false,
    )?;
    check_same_answers(
        "script without .py",
        Base::Files(&[("userScript", "pass\n")]),
        How::Script("userScript"),
        false,
    )?;
    check_same_answers(
        "script named collections.py",
        Base::Files(&[("collections.py", "pass\n")]),
        How::Script("collections.py"),
        false,
    )
}

// ---------------------------------------------------------------------------------------------
// 4. Same bytes.

/// Names with Unicode (astral too), quotes, spaces, backslashes and control characters.
const NAMES: [&str; 10] = [
    "plain.py",
    "with space.py",
    "double\"quote.py",
    "single'quote.py",
    "back\\slash.py",
    "\u{fc}n\u{ef}c\u{f6}d\u{e9} \u{65e5}\u{672c}.py",
    "emoji \u{1f389}.py",
    "tab\tand\nnewline.py",
    "del\u{7f} and \u{2028}.txt",
    "dir \u{e9} 'q' \"dq\"",
];

#[test]
fn our_wire_form_is_toils_pickle() -> TestResult {
    let toil = toil()?;
    let scratch = Scratch::new()?;
    // A plain store, and one whose own path has a space, quotes and Unicode.
    let stores = [
        scratch.path().join("js"),
        scratch.path().join("j\u{e9} s'\"q"),
    ];
    scratch.toil_stores(toil, &[&stores[0], &stores[1]])?;
    let names = scratch.path().join("names");
    let mut items = Vec::new();
    for name in NAMES {
        let path = names.join(name);
        if name.starts_with("dir") {
            write(&path, "inner \u{e9}.py", "x = 1\n")?;
        } else {
            write(&names, name, &format!("# {name}\n"))?;
        }
        // Absolute leader paths, and relative ones, which are made absolute as Python's
        // `os.path.abspath` makes them before hashing.
        let absolute = fs::canonicalize(scratch.path())?.join("names").join(name);
        let given = [
            utf8(&path)?.to_owned(),
            format!("names/{name}"),
            format!("./names/{name}"),
        ];
        for (store, leader_path) in stores
            .iter()
            .flat_map(|store| given.iter().map(move |path| (store, path)))
        {
            let created: Value = serde_json::from_str(&scratch.ours(
                scratch.path(),
                args!["create", leader_path, "--store", store, "--json"],
            )?)?;
            assert_eq!(created["name"], *name, "{leader_path:?}");
            assert_eq!(created["leaderPath"], utf8(&absolute)?, "{leader_path:?}");
            assert_eq!(
                created["pathHash"],
                md5_hex(utf8(&absolute)?),
                "{leader_path:?}"
            );
            items.push(json!({
                "path": created["leaderPath"],
                "store": store,
                "envName": created["envName"],
                "envValue": created["envValue"],
                "contentHash": created["contentHash"],
            }));
        }
    }
    let report = scratch.driver(&toil.python, "wire.py", &json!({ "items": items }), "")?;
    let results = report["results"].as_array().ok_or("no results")?;
    assert_eq!(results.len(), items.len());
    for (item, result) in items.iter().zip(results) {
        let ours = str_at(item, "envValue")?;
        let what = format!("{:?}", item["path"]);
        assert_eq!(
            str_at(result, "pickle")?,
            ours,
            "{what}: unpickle(ours).pickle()"
        );
        assert_eq!(str_at(result, "lookup")?, ours, "{what}: lookup() of ours");
        assert_eq!(result["fetchedMd5"], item["contentHash"], "{what}");
        if result["class"] != "FileResource" {
            assert_eq!(result["class"], "DirectoryResource", "{what}");
        } else {
            // Toil's own create() of the same path into the same store gives the same string:
            // our `file:` URLs equal Toil's unless the path holds `%`, `#`, `?` or controls.
            assert_eq!(
                str_at(result, "toilCreate")?,
                ours,
                "{what}: Toil's own create() of the same path into the same store"
            );
        }
    }
    Ok(())
}

#[test]
fn toil_version_is_reported() -> TestResult {
    let toil = toil()?;
    assert!(
        toil.version.starts_with("9."),
        "these tests follow Toil 9; found {}",
        toil.version
    );
    Ok(())
}
