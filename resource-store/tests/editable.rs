//! A library caller publishing a virtualenv gets the source trees of its editable installs in the
//! archive, without asking: `publish` and `dry_run` add them for every virtualenv resource.

use std::fs;
use std::path::{Path, PathBuf};

use resource_archive::{ExtraTree, PackOptions};
use resource_core::ResourceKind;
use resource_store::{JobStore, PublishOptions, StoreLocator, dry_run, install, open_url, publish};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A `site-packages` with a module installed normally and two editable installs, as pip and
/// setuptools leave them: one whose `.pth` file lists its source tree (named by its
/// distribution's `RECORD`), and one whose `.pth` file imports setuptools' finder, whose
/// `MAPPING` names the package directory (its distribution metadata gone).
fn site_packages_with_editables(scratch: &Path) -> Result<PathBuf, std::io::Error> {
    let site = scratch.join("venv/lib/python3.12/site-packages");
    fs::create_dir_all(&site)?;
    fs::write(site.join("tool.py"), "import edpkg, fdpkg\n")?;

    let path_source = scratch.join("src-a");
    fs::create_dir_all(path_source.join("edpkg"))?;
    fs::write(
        path_source.join("edpkg/__init__.py"),
        "from .core import hello\n",
    )?;
    fs::write(
        path_source.join("edpkg/core.py"),
        "def hello():\n    return 'a'\n",
    )?;
    fs::write(
        site.join("__editable__.edpkg-0.1.pth"),
        format!("{}\n", path_source.display()),
    )?;
    let dist_info = site.join("edpkg-0.1.dist-info");
    fs::create_dir(&dist_info)?;
    fs::write(
        dist_info.join("METADATA"),
        "Metadata-Version: 2.1\nName: edpkg\nVersion: 0.1\n",
    )?;
    fs::write(dist_info.join("top_level.txt"), "edpkg\n")?;
    fs::write(
        dist_info.join("RECORD"),
        "__editable__.edpkg-0.1.pth,,\nedpkg-0.1.dist-info/RECORD,,\n",
    )?;
    fs::write(
        dist_info.join("direct_url.json"),
        format!(
            r#"{{"url": "file://{}", "dir_info": {{"editable": true}}}}"#,
            path_source.display()
        ),
    )?;

    let finder_source = scratch.join("src-b");
    fs::create_dir_all(finder_source.join("fdpkg"))?;
    fs::write(finder_source.join("fdpkg/__init__.py"), "VALUE = 'b'\n")?;
    fs::write(
        site.join("__editable___fdpkg_1_0_finder.py"),
        format!(
            "MAPPING = {{'fdpkg': '{}'}}\nNAMESPACES = {{}}\n",
            finder_source.join("fdpkg").display()
        ),
    )?;
    fs::write(
        site.join("__editable__.fdpkg-1.0.pth"),
        "import __editable___fdpkg_1_0_finder; __editable___fdpkg_1_0_finder.install()\n",
    )?;
    Ok(site)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_virtualenv_carries_its_editable_sources() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let site = site_packages_with_editables(scratch.path())?;
    let store = JobStore::open(&StoreLocator::directory(&scratch.path().join("store"))?)?;

    let published = publish(&store, &site, &PublishOptions::default()).await?;
    assert_eq!(published.resource.kind, ResourceKind::VirtualEnv);
    // A dry run plans the same archive.
    let planned = dry_run(&site, &PublishOptions::default())?;
    assert_eq!(planned.content_hash, published.resource.content_hash);

    // Only the store is left: the worker's copy must hold the editable sources itself.
    fs::rename(scratch.path().join("src-a"), scratch.path().join("gone-a"))?;
    fs::rename(scratch.path().join("src-b"), scratch.path().join("gone-b"))?;
    let source = open_url(&published.resource.url, &Default::default())?;
    let root = scratch.path().join("root");
    let installed = install(
        &published.resource,
        &root,
        source,
        None,
        &Default::default(),
    )?;
    let local = &installed.path;
    assert_eq!(
        fs::read_to_string(local.join("tool.py"))?,
        "import edpkg, fdpkg\n"
    );
    assert_eq!(
        fs::read_to_string(local.join("edpkg/core.py"))?,
        "def hello():\n    return 'a'\n"
    );
    assert_eq!(
        fs::read_to_string(local.join("edpkg/__init__.py"))?,
        "from .core import hello\n"
    );
    assert_eq!(
        fs::read_to_string(local.join("fdpkg/__init__.py"))?,
        "VALUE = 'b'\n"
    );
    Ok(())
}

#[test]
fn only_virtualenvs_get_editable_sources_and_the_callers_extra_trees_stay() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let site = site_packages_with_editables(scratch.path())?;
    let as_venv = dry_run(&site, &PublishOptions::default())?;
    let as_directory = dry_run(
        &site,
        &PublishOptions {
            kind: Some(ResourceKind::Directory),
            ..PublishOptions::default()
        },
    )?;
    assert_eq!(as_venv.kind, ResourceKind::VirtualEnv);
    // The three files of the two editable source trees.
    assert_eq!(as_venv.files, as_directory.files + 3);

    let notes = scratch.path().join("notes.txt");
    fs::write(&notes, "mine\n")?;
    let with_extra = dry_run(
        &site,
        &PublishOptions {
            pack: PackOptions {
                extra_trees: vec![ExtraTree {
                    source: notes,
                    archive_name: "notes.txt".into(),
                }],
                ..PackOptions::default()
            },
            ..PublishOptions::default()
        },
    )?;
    assert_eq!(with_extra.files, as_venv.files + 1);
    Ok(())
}
