//! Extra trees packed beside the main one (the editable installs of a virtualenv).

use std::fs;

use resource_archive::{ArchiveIndex, ExtraTree, PackError, PackOptions, TailParse, UnpackOptions};
use resource_core::ResourceKind;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn extra_trees_land_under_their_names_and_overlaps_are_refused() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let site = scratch.path().join("site-packages");
    fs::create_dir_all(site.join("installed"))?;
    fs::write(site.join("installed/__init__.py"), "A = 1\n")?;
    let elsewhere = scratch.path().join("src");
    fs::create_dir_all(elsewhere.join("edpkg/sub"))?;
    fs::write(elsewhere.join("edpkg/sub/mod.py"), "B = 2\n")?;
    fs::write(elsewhere.join("tool.py"), "C = 3\n")?;

    let options = PackOptions {
        extra_trees: vec![
            ExtraTree {
                source: elsewhere.join("edpkg"),
                archive_name: "ns/edpkg".into(),
            },
            ExtraTree {
                source: elsewhere.join("tool.py"),
                archive_name: "tool.py".into(),
            },
        ],
        ..PackOptions::default()
    };
    let plan = resource_archive::plan(&site, ResourceKind::VirtualEnv, &options)?;
    let mut bytes = Vec::new();
    plan.write(&mut bytes)?;
    let TailParse::Index(index) = ArchiveIndex::from_tail(&bytes, bytes.len() as u64)? else {
        return Err("the whole archive is its own tail".into());
    };
    let dest = tempfile::tempdir()?;
    resource_archive::unpack(&index, &bytes[..], dest.path(), &UnpackOptions::default())?;
    assert_eq!(
        fs::read_to_string(dest.path().join("installed/__init__.py"))?,
        "A = 1\n"
    );
    assert_eq!(
        fs::read_to_string(dest.path().join("ns/edpkg/sub/mod.py"))?,
        "B = 2\n"
    );
    assert_eq!(fs::read_to_string(dest.path().join("tool.py"))?, "C = 3\n");

    let overlapping = PackOptions {
        extra_trees: vec![ExtraTree {
            source: elsewhere.join("edpkg"),
            archive_name: "installed".into(),
        }],
        ..PackOptions::default()
    };
    let refused = resource_archive::plan(&site, ResourceKind::VirtualEnv, &overlapping);
    assert!(
        matches!(refused, Err(PackError::DuplicateEntry { .. })),
        "{refused:?}"
    );
    for bad in ["", "../up", "a/../b"] {
        let options = PackOptions {
            extra_trees: vec![ExtraTree {
                source: elsewhere.join("tool.py"),
                archive_name: bad.into(),
            }],
            ..PackOptions::default()
        };
        let refused = resource_archive::plan(&site, ResourceKind::VirtualEnv, &options);
        assert!(
            matches!(refused, Err(PackError::BadExtraName { .. })),
            "{bad}: {refused:?}"
        );
    }
    Ok(())
}
