//! Scanning hand-made `site-packages` directories: every kind of metadata, module and editable
//! install, read from files alone.

mod common;

use std::path::Path;

use common::{TestResult, write_tree};
use resource_modules::scan::{DistFormat, EditableVia, ModuleKind, ScanError, scan_site_packages};

fn write(path: &Path, text: &str) -> TestResult {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

#[test]
fn distributions_in_every_format() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let site = tmp.path();
    // A wheel without top_level.txt: names come from RECORD.
    write(
        &site.join("Alpha_Pkg-3.1.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: Alpha-Pkg\nVersion: 3.1\nSummary: x\n  continued\n\nName: not-a-header\n",
    )?;
    write(
        &site.join("Alpha_Pkg-3.1.dist-info/RECORD"),
        "alpha/__init__.py,sha256=a,1\nalpha/sub/x.py,,\n\"alpha_helpers.py\",,\n\
         _alpha.cpython-311-x86_64-linux-gnu.so,,\n../../bin/alpha,,\nAlpha_Pkg-3.1.dist-info/RECORD,,\n",
    )?;
    write(&site.join("Alpha_Pkg-3.1.dist-info/INSTALLER"), "uv\n")?;
    // An egg-info directory and a distutils egg-info file.
    write(
        &site.join("beta-0.2-py3.11.egg-info/PKG-INFO"),
        "Metadata-Version: 1.0\nName: beta\nVersion: 0.2\n",
    )?;
    write(
        &site.join("beta-0.2-py3.11.egg-info/top_level.txt"),
        "beta\n\n",
    )?;
    write(
        &site.join("gamma-1.0.egg-info"),
        "Metadata-Version: 1.0\nName: gamma\nVersion: 1.0\n",
    )?;
    // A dist-info whose METADATA is missing: named from its directory, reported as a problem.
    std::fs::create_dir_all(site.join("delta-4.0.dist-info"))?;

    let report = scan_site_packages(site)?;
    let summary: Vec<_> = report
        .distributions
        .iter()
        .map(|d| {
            (
                d.name.as_str(),
                d.version.as_deref(),
                d.format,
                d.top_level.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "Alpha-Pkg",
                Some("3.1"),
                DistFormat::DistInfo,
                vec![
                    "_alpha".to_owned(),
                    "alpha".to_owned(),
                    "alpha_helpers".to_owned()
                ]
            ),
            (
                "beta",
                Some("0.2"),
                DistFormat::EggInfo,
                vec!["beta".to_owned()]
            ),
            ("delta", Some("4.0"), DistFormat::DistInfo, vec![]),
            ("gamma", Some("1.0"), DistFormat::EggInfoFile, vec![]),
        ]
    );
    assert_eq!(report.distributions[0].record_entries, Some(6));
    assert_eq!(report.distributions[0].installer.as_deref(), Some("uv"));
    assert_eq!(report.problems.len(), 1);
    assert!(
        report.problems[0]
            .path
            .ends_with("delta-4.0.dist-info/METADATA")
    );
    Ok(())
}

#[test]
fn top_level_names_of_every_kind() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let site = tmp.path();
    write_tree(
        site,
        &[
            "pkg/__init__.py",
            "compiled/__init__.cpython-311-x86_64-linux-gnu.so",
            "nspkg/mod.py",
            "deepns/inner/pkg/__init__.py",
            "data_only/readme.txt",
            "__pycache__/x.cpython-311.pyc",
            "not-a-name/mod.py",
            "mod.py",
            "old.pyc",
            "fast.cpython-311-x86_64-linux-gnu.so",
            "stable.abi3.so",
            "plain.so",
            "win.cp311-win_amd64.pyd",
            "libthing.so.1",
            "README.txt",
        ],
    )?;
    let report = scan_site_packages(site)?;
    let names: Vec<(&str, ModuleKind)> = report
        .top_level
        .iter()
        .map(|t| (t.name.as_str(), t.kind.clone()))
        .collect();
    let ext = |tag: Option<&str>| ModuleKind::Extension {
        abi_tag: tag.map(str::to_owned),
    };
    assert_eq!(
        names,
        [
            ("compiled", ModuleKind::Package),
            ("deepns", ModuleKind::NamespacePackage),
            ("fast", ext(Some("cpython-311-x86_64-linux-gnu"))),
            ("mod", ModuleKind::Module),
            ("nspkg", ModuleKind::NamespacePackage),
            ("old", ModuleKind::Bytecode),
            ("pkg", ModuleKind::Package),
            ("plain", ext(None)),
            ("stable", ext(Some("abi3"))),
            ("win", ext(Some("cp311-win_amd64"))),
        ]
    );
    Ok(())
}

#[test]
fn pth_files_are_read_never_run() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let site = tmp.path().join("site");
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other)?;
    write(
        &site.join("a.pth"),
        &format!(
            "# comment\n\n{}\n../other\nmissing-dir\nimport sys; sys.exit(3)\nimport\tos\n",
            other.display()
        ),
    )?;
    write(&site.join(".hidden.pth"), "/nowhere\n")?;
    let report = scan_site_packages(&site)?;
    assert_eq!(report.pth_files.len(), 1, "hidden .pth files are skipped");
    let pth = &report.pth_files[0];
    let paths: Vec<(&Path, bool)> = pth
        .paths
        .iter()
        .map(|p| (p.path.as_path(), p.exists))
        .collect();
    assert_eq!(
        paths,
        [
            (other.as_path(), true),
            (other.as_path(), true),
            (site.join("missing-dir").as_path(), false),
        ]
    );
    assert_eq!(pth.imports, ["import sys; sys.exit(3)", "import\tos"]);
    assert_eq!(report.editables, []);
    Ok(())
}

#[test]
fn editable_installs_of_every_style() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let site = tmp.path().join("site");
    let proj = tmp.path().join("proj");
    // 1. setuptools path style, metadata present (RECORD lists the .pth).
    write_tree(&proj.join("one/src"), &["one/__init__.py"])?;
    write(
        &site.join("__editable__.one-1.0.pth"),
        &format!("{}\n", proj.join("one/src").display()),
    )?;
    write(
        &site.join("one-1.0.dist-info/METADATA"),
        "Name: one\nVersion: 1.0\n",
    )?;
    write(
        &site.join("one-1.0.dist-info/RECORD"),
        "__editable__.one-1.0.pth,,\none-1.0.dist-info/RECORD,,\n",
    )?;
    write(&site.join("one-1.0.dist-info/top_level.txt"), "one\n")?;
    write(
        &site.join("one-1.0.dist-info/direct_url.json"),
        r#"{"dir_info": {"editable": true}, "url": "file:///ignored/when/pth/is/known"}"#,
    )?;
    // 2. setuptools finder style (old template, no metadata left): MAPPING read from the file.
    write_tree(
        &proj.join("two"),
        &["two/__init__.py", "twomod.py", "setup.py"],
    )?;
    write(
        &site.join("__editable__.two-2.0.pth"),
        "import __editable___two_2_0_finder; __editable___two_2_0_finder.install()",
    )?;
    write(
        &site.join("__editable___two_2_0_finder.py"),
        &format!(
            "import sys\nMAPPING = {{'two': '{}', 'twomod': '{}'}}\nNAMESPACES = {{}}\n\
             raise SystemExit('never run')\n",
            proj.join("two/two").display(),
            proj.join("two/twomod").display()
        ),
    )?;
    // 3. Another backend: only direct_url.json (and a .pth of its own name) say where.
    write_tree(&proj.join("three"), &["three/__init__.py"])?;
    write(
        &site.join("three-0.1.dist-info/METADATA"),
        "Name: three\nVersion: 0.1\n",
    )?;
    write(
        &site.join("three-0.1.dist-info/direct_url.json"),
        &format!(
            r#"{{"url": "file://{}", "dir_info": {{"editable": true}}}}"#,
            proj.join("three").display()
        ),
    )?;
    // 4. An egg-link whose egg-info names the project.
    write_tree(&proj.join("four"), &["four/__init__.py"])?;
    write(
        &proj.join("four/Four_Pkg.egg-info/PKG-INFO"),
        "Name: Four-Pkg\nVersion: 4.4\n",
    )?;
    write(&proj.join("four/Four_Pkg.egg-info/top_level.txt"), "four\n")?;
    write(
        &site.join("Four-Pkg.egg-link"),
        &format!("{}\n.", proj.join("four").display()),
    )?;

    let report = scan_site_packages(&site)?;
    let summary: Vec<_> = report
        .editables
        .iter()
        .map(|e| {
            (
                e.distribution.clone(),
                e.version.clone(),
                e.via,
                e.root.clone(),
                e.top_level
                    .iter()
                    .map(|r| (r.name.clone(), r.path.clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        summary,
        [
            (
                s("one"),
                s("1.0"),
                EditableVia::PthPath,
                proj.join("one/src"),
                vec![("one".to_owned(), proj.join("one/src/one"))]
            ),
            (
                s("three"),
                s("0.1"),
                EditableVia::DirectUrl,
                proj.join("three"),
                vec![("three".to_owned(), proj.join("three/three"))]
            ),
            (
                s("two"),
                s("2.0"),
                EditableVia::PthFinder,
                proj.join("two/two"),
                vec![("two".to_owned(), proj.join("two/two"))]
            ),
            (
                s("two"),
                s("2.0"),
                EditableVia::PthFinder,
                proj.join("two/twomod.py"),
                vec![("twomod".to_owned(), proj.join("two/twomod.py"))]
            ),
            (
                s("Four-Pkg"),
                s("4.4"),
                EditableVia::EggLink,
                proj.join("four"),
                vec![("four".to_owned(), proj.join("four/four"))]
            ),
        ]
    );
    let four = report
        .distributions
        .iter()
        .find(|d| d.name == "Four-Pkg")
        .ok_or("no Four-Pkg")?;
    assert!(four.editable && four.format == DistFormat::EggInfo);
    // The finder module is a top-level module too (it is importable), but nothing ran.
    assert_eq!(
        report
            .pth_files
            .iter()
            .map(|p| p.finders.len())
            .sum::<usize>(),
        1
    );
    Ok(())
}

#[test]
fn scanning_a_file_or_nothing_fails_naming_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("file");
    std::fs::write(&file, "")?;
    match scan_site_packages(&file) {
        Err(err @ ScanError::NotADirectory { .. }) => {
            assert!(err.to_string().contains(&*file.to_string_lossy()));
        }
        other => return Err(format!("unexpected {other:?}").into()),
    }
    let missing = tmp.path().join("missing");
    let err = scan_site_packages(&missing)
        .err()
        .ok_or("missing dir scanned")?;
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );
    Ok(())
}
