//! Property tests of packing: generated trees (non-ASCII and spaces in names, modes with exec
//! and special bits, empty directories, depth) pack to the same bytes every time and wherever
//! and in whatever order they were created.

mod pack_support;

use std::path::Path;

use pack_support::{create_generated, expected_entries, gen_children, pack_to_vec};
use proptest::prelude::*;
use resource_archive::{Compression, PackOptions};
use resource_core::{ContentHash, ResourceKind};

/// Another file system than the temporary directory's when there is one.
fn other_place() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn prop_equal_trees_pack_to_equal_bytes(children in gen_children(), deflate in any::<bool>()) {
        let first = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let second = other_place().map_err(|e| TestCaseError::fail(e.to_string()))?;
        create_generated(first.path(), &children, false)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        create_generated(second.path(), &children, true)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let options = PackOptions {
            compression: if deflate { Compression::Deflate { level: 6 } } else { Compression::Stored },
            ..PackOptions::default()
        };
        let pack = |root: &Path| {
            pack_to_vec(root, ResourceKind::Directory, &options)
                .map_err(|e| TestCaseError::fail(e.to_string()))
        };
        let a = pack(first.path())?;
        prop_assert!(a == pack(first.path())?, "packing twice differs");
        prop_assert!(a == pack(second.path())?, "a copy made in reverse order differs");

        let plan = resource_archive::plan(second.path(), ResourceKind::Directory, &options)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (len, hash) = plan.measure().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(len, a.len() as u64);
        prop_assert_eq!(hash, ContentHash::of_bytes(&a));

        let planned: Vec<(String, u32, i64)> = plan
            .entries()
            .iter()
            .map(|entry| (entry.name().to_owned(), entry.unix_mode(), entry.mtime()))
            .collect();
        prop_assert_eq!(planned, expected_entries(&children));
    }
}
