//! Module discovery with the real base `python3`: Toil's own resource-test scenarios and more.
//! Each case builds a tree in a temporary directory, describes one module, and compares.

mod common;

use std::path::{Path, PathBuf};

use common::{TestResult, base_choice, python_find_spec_origin, shared_cache, write_tree};
use resource_core::ResourceKind;
use resource_modules::{Discoverer, DiscoveryContext, ModuleSource, PythonEnv, Shipping, discover};

enum Source {
    Script(&'static str),
    Main(&'static str),
    Imported(&'static str, &'static str),
}

enum Expect {
    Described {
        /// `dirPath`, relative to the case's directory.
        dir: &'static str,
        name: &'static str,
        /// What ships (relative path, kind, package root), `None` for an engine module.
        ship: Option<(&'static str, ResourceKind, bool)>,
    },
    /// The error message holds every one of these (`{dir}` is the case's directory).
    Fails(&'static [&'static str]),
}

struct Case {
    files: &'static [&'static str],
    source: Source,
    expect: Expect,
}

/// Builds the case's tree, describes its module with the base interpreter, and checks the answer;
/// for `-m` cases also that Python's own `find_spec` finds the same file.
fn check(case: Case) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().canonicalize()?;
    write_tree(&dir, case.files)?;
    let choice = base_choice()?;
    let python = choice.python.clone();
    let discoverer = Discoverer::new(choice, shared_cache(), &dir);
    let source = match case.source {
        Source::Script(path) => ModuleSource::Script(path.into()),
        Source::Main(name) => ModuleSource::Main(name.into()),
        Source::Imported(file, name) => ModuleSource::Imported {
            file: file.into(),
            name: name.into(),
        },
    };
    let result = discoverer.discover(&source);
    match case.expect {
        Expect::Described {
            dir: expected_dir,
            name,
            ship,
        } => {
            let found = result?;
            assert_eq!(found.descriptor.dir_path, dir.join(expected_dir));
            assert_eq!(found.descriptor.name, name);
            assert!(!found.descriptor.from_virtual_env);
            let plan = found
                .shipping
                .plan()
                .map(|p| (p.path.clone(), p.kind, p.package_root));
            let expected_plan = ship.map(|(rel, kind, root)| (dir.join(rel), kind, root));
            assert_eq!(plan, expected_plan);
            if let Source::Main(module) = case.source {
                let origin = python_find_spec_origin(&python, &dir, module)?;
                let run_file = if origin.ends_with("__init__.py") {
                    Path::new(&origin).with_file_name("__main__.py")
                } else {
                    PathBuf::from(origin)
                };
                assert_eq!(found.file, run_file);
            }
        }
        Expect::Fails(needles) => {
            let message = match result {
                Ok(found) => return Err(format!("expected an error, got {found:?}").into()),
                // The message and its chain of causes, as the CLI prints them.
                Err(err) => {
                    let mut message = err.to_string();
                    let mut cause = std::error::Error::source(&err);
                    while let Some(inner) = cause {
                        message.push_str(&format!(": {inner}"));
                        cause = inner.source();
                    }
                    message
                }
            };
            for needle in needles {
                let needle = needle.replace("{dir}", &dir.to_string_lossy());
                assert!(message.contains(&needle), "{message:?} lacks {needle:?}");
            }
        }
    }
    Ok(())
}

const PACKAGE: &[&str] = &[
    "foo/__init__.py",
    "foo/userScript.py",
    "foo/bar/__init__.py",
    "foo/bar/helper.py",
];

#[test]
fn stand_alone_script_ships_its_directory_with_helpers() -> TestResult {
    check(Case {
        files: &["userScript.py", "helper.py"],
        source: Source::Script("userScript.py"),
        expect: Expect::Described {
            dir: "",
            name: "userScript",
            ship: Some(("", ResourceKind::Directory, false)),
        },
    })
}

#[test]
fn bytecode_script_is_accepted() -> TestResult {
    check(Case {
        files: &["flow.pyc"],
        source: Source::Script("flow.pyc"),
        expect: Expect::Described {
            dir: "",
            name: "flow",
            ship: Some(("", ResourceKind::Directory, false)),
        },
    })
}

#[test]
fn imported_package_module_ships_its_root_package() -> TestResult {
    check(Case {
        files: PACKAGE,
        source: Source::Imported("foo/userScript.py", "foo.userScript"),
        expect: Expect::Described {
            dir: "",
            name: "foo.userScript",
            ship: Some(("foo", ResourceKind::Directory, true)),
        },
    })
}

#[test]
fn imported_subpackage_from_its_init() -> TestResult {
    check(Case {
        files: PACKAGE,
        source: Source::Imported("foo/bar/__init__.py", "foo.bar"),
        expect: Expect::Described {
            dir: "",
            name: "foo.bar",
            ship: Some(("foo", ResourceKind::Directory, true)),
        },
    })
}

#[test]
fn imported_with_the_wrong_package_path_fails() -> TestResult {
    check(Case {
        files: PACKAGE,
        source: Source::Imported("foo/bar/helper.py", "foo.baz.helper"),
        expect: Expect::Fails(&["Incorrect path to package", "\"baz\"", "\"bar\""]),
    })
}

#[test]
fn run_as_module_in_a_package() -> TestResult {
    check(Case {
        files: PACKAGE,
        source: Source::Main("foo.bar.helper"),
        expect: Expect::Described {
            dir: "",
            name: "foo.bar.helper",
            ship: Some(("foo", ResourceKind::Directory, true)),
        },
    })
}

#[test]
fn run_as_module_a_package_runs_its_main() -> TestResult {
    check(Case {
        files: &["app/__init__.py", "app/__main__.py"],
        source: Source::Main("app"),
        expect: Expect::Described {
            dir: "",
            name: "app.__main__",
            ship: Some(("app", ResourceKind::Directory, true)),
        },
    })
}

#[test]
fn run_as_module_a_package_without_main_fails() -> TestResult {
    check(Case {
        files: PACKAGE,
        source: Source::Main("foo.bar"),
        expect: Expect::Fails(&[
            "No module named 'foo.bar.__main__'",
            "cannot be directly executed",
        ]),
    })
}

#[test]
fn run_as_top_level_module_is_a_script_to_toil() -> TestResult {
    check(Case {
        files: &["flow.py", "helper.py"],
        source: Source::Main("flow"),
        expect: Expect::Described {
            dir: "",
            name: "flow",
            ship: Some(("", ResourceKind::Directory, false)),
        },
    })
}

#[test]
fn namespace_package_ships_its_directory_as_package_root() -> TestResult {
    check(Case {
        files: &["ns/sub/mod.py", "ns/sub/other.py"],
        source: Source::Main("ns.sub.mod"),
        expect: Expect::Described {
            dir: "",
            name: "ns.sub.mod",
            ship: Some(("ns", ResourceKind::Directory, true)),
        },
    })
}

#[test]
fn missing_module_fails() -> TestResult {
    check(Case {
        files: PACKAGE,
        source: Source::Main("foo.nothing"),
        expect: Expect::Fails(&["No module named 'foo.nothing'", "{dir}"]),
    })
}

#[test]
fn stand_alone_script_inside_a_package_fails_with_a_hint() -> TestResult {
    check(Case {
        files: &["pkg/__init__.py", "pkg/userScript.py", "pkg/helper.py"],
        source: Source::Script("pkg/userScript.py"),
        expect: Expect::Fails(&[
            "does not support loading a user script from a package directory",
            "remove __init__.py from {dir}/pkg",
            "as a module via: PYTHONPATH='{dir}' python3.",
            " -m pkg.userScript",
        ]),
    })
}

#[test]
fn script_without_py_suffix_fails() -> TestResult {
    check(Case {
        files: &["userScript"],
        source: Source::Script("userScript"),
        expect: Expect::Fails(&[
            "{dir}/userScript",
            "The name of a user script/module must end in .py or .pyc.",
        ]),
    })
}

#[test]
fn script_named_like_the_standard_library_collides() -> TestResult {
    check(Case {
        files: &["collections.py"],
        source: Source::Script("collections.py"),
        expect: Expect::Fails(&[
            "The user module 'collections' collides with module 'collections' from",
            "collections/__init__.py",
        ]),
    })
}

#[test]
fn script_named_like_a_builtin_collides() -> TestResult {
    check(Case {
        files: &["sys.py"],
        source: Source::Script("sys.py"),
        expect: Expect::Fails(&["'sys' collides", "built into the interpreter"]),
    })
}

#[test]
fn script_named_like_an_installed_package_collides() -> TestResult {
    // pip is on the base interpreter's path (it runs these tests' virtualenv setup too).
    check(Case {
        files: &["pip.py"],
        source: Source::Script("pip.py"),
        expect: Expect::Fails(&["'pip' collides", "site-packages/pip/__init__.py"]),
    })
}

#[test]
fn script_that_is_not_an_identifier_fails() -> TestResult {
    check(Case {
        files: &["my-flow.py"],
        source: Source::Script("my-flow.py"),
        expect: Expect::Fails(&["\"my-flow\" is not a valid Python module name"]),
    })
}

#[test]
fn missing_script_fails_naming_it() -> TestResult {
    check(Case {
        files: &[],
        source: Source::Script("gone.py"),
        expect: Expect::Fails(&["{dir}/gone.py", "No such file"]),
    })
}

#[test]
fn engine_modules_are_never_shipped() -> TestResult {
    check(Case {
        files: &["toil/__init__.py", "toil/resource.py"],
        source: Source::Imported("toil/resource.py", "toil.resource"),
        expect: Expect::Described {
            dir: "",
            name: "toil.resource",
            ship: None,
        },
    })
}

#[test]
fn virtual_env_variable_alone_does_not_make_an_outside_module_from_the_venv() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().canonicalize()?;
    write_tree(&dir, &["flow.py"])?;
    let choice = base_choice()?;
    let snapshot = shared_cache().lookup(&choice)?.snapshot;
    let context = DiscoveryContext::new(&dir);
    let source = ModuleSource::Script("flow.py".into());
    // In a "virtualenv" by the variable (Toil's inVirtualEnv), but the script is not under
    // sys.prefix: not from the virtualenv.
    let env = choice.env.clone().with_var("VIRTUAL_ENV", "/somewhere");
    let found = discover(&source, &snapshot, &env, &context)?;
    assert!(!found.descriptor.from_virtual_env);
    // A different engine prefix is honoured.
    let context = DiscoveryContext {
        engine_prefix: "flow".into(),
        ..context
    };
    let found = discover(&source, &snapshot, &PythonEnv::new(), &context)?;
    assert!(matches!(found.shipping, Shipping::EngineModule { .. }));
    Ok(())
}

#[test]
fn describe_json_has_toil_keys() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().canonicalize()?;
    write_tree(&dir, PACKAGE)?;
    let discoverer = Discoverer::new(base_choice()?, shared_cache(), &dir);
    let found = discoverer.discover(&ModuleSource::Main("foo.userScript".into()))?;
    let json = serde_json::to_value(&found)?;
    assert_eq!(json["dirPath"], dir.to_string_lossy().as_ref());
    assert_eq!(json["name"], "foo.userScript");
    assert_eq!(json["fromVirtualEnv"], false);
    assert_eq!(json["ship"]["kind"], "dir");
    assert_eq!(json["ship"]["toilClass"], "toil.resource.DirectoryResource");
    assert_eq!(json["ship"]["packageRoot"], true);
    assert_eq!(
        found.descriptor.to_command()?,
        [dir.to_string_lossy().as_ref(), "foo.userScript", "False"]
    );
    Ok(())
}
