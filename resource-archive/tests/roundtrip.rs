//! Pack → unpack round trips: what [`plan`](resource_archive::plan()) writes, the archive
//! reader ([`unpack`](resource_archive::unpack())) recreates, with contents, permission bits,
//! modification times, empty directories and kept symbolic links.

mod pack_support;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use pack_support::{
    MTIME, Node, TestResult, build_tree, create_generated, gen_children, pack_to_vec,
};
use proptest::prelude::*;
use resource_archive::{ArchiveIndex, TailParse, UnpackOptions, unpack};
use resource_archive::{Compression, PackOptions, PlanEntryKind, SymlinkPolicy};
use resource_core::hash::HashingReader;
use resource_core::{ContentHash, ResourceKind};

type BoxError = Box<dyn std::error::Error>;

/// Unpacks `archive` into `dest` with the archive reader, checking the hash it reports.
fn unpack_into(archive: &[u8], dest: &Path) -> Result<(), BoxError> {
    let TailParse::Index(index) = ArchiveIndex::from_tail(archive, archive.len() as u64)? else {
        return Err("the whole archive was not enough to index it".into());
    };
    let mut stream = HashingReader::new(Cursor::new(archive));
    unpack(&index, &mut stream, dest, &UnpackOptions::default())?;
    let (_, hash) = stream.finish()?;
    assert_eq!(hash, ContentHash::of_bytes(archive));
    Ok(())
}

/// Packs `root`, unpacks it into a fresh directory, and checks that every planned entry came
/// back with its kind, content, permission bits and modification time, and nothing else did.
fn round_trip(root: &Path, kind: ResourceKind, options: &PackOptions) -> Result<(), BoxError> {
    let plan = resource_archive::plan(root, kind, options)?;
    let archive = pack_to_vec(root, kind, options)?;
    let dest = tempfile::tempdir()?;
    unpack_into(&archive, dest.path())?;

    let mut unpacked = 0;
    for entry in walkdir::WalkDir::new(dest.path()).min_depth(1) {
        entry?;
        unpacked += 1;
    }
    assert_eq!(unpacked, plan.entries().len(), "entries unpacked");
    for entry in plan.entries() {
        let name = entry.name();
        let path = dest.path().join(name.trim_end_matches('/'));
        let metadata = fs::symlink_metadata(&path)?;
        assert_eq!(metadata.mtime(), entry.mtime(), "{name}");
        match entry.kind() {
            PlanEntryKind::Directory => assert!(metadata.is_dir(), "{name}"),
            PlanEntryKind::File { .. } => {
                assert!(metadata.is_file(), "{name}");
                assert_eq!(
                    fs::read(&path)?,
                    fs::read(plan.source_path(entry))?,
                    "{name}"
                );
            }
            PlanEntryKind::Symlink { target } => {
                assert!(metadata.file_type().is_symlink(), "{name}");
                assert_eq!(fs::read_link(&path)?, Path::new(target), "{name}");
                continue;
            }
            other => return Err(format!("unexpected kind {other:?}").into()),
        }
        assert_eq!(
            metadata.permissions().mode() & 0o7777,
            entry.permissions(),
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn packages_links_and_large_files_round_trip() -> TestResult {
    let work = tempfile::tempdir()?;
    build_tree(
        work.path(),
        &[
            ("pkg", Node::Dir(0o755)),
            ("pkg/__init__.py", Node::File(0o644, b"")),
            ("pkg/run", Node::File(0o755, b"#!/bin/sh\n")),
            ("pkg/data", Node::Dir(0o700)),
            ("pkg/data/large.bin", Node::Generated(0o640, 3 << 20)),
            ("pkg/data/link", Node::Link("large.bin")),
            ("pkg/up", Node::Link("data/large.bin")),
            ("pkg/empty", Node::Dir(0o755)),
            ("pkg/données", Node::File(0o600, "é".as_bytes())),
        ],
        MTIME,
    )?;
    for compression in [Compression::Stored, Compression::Deflate { level: 6 }] {
        for symlinks in [SymlinkPolicy::Follow, SymlinkPolicy::Keep] {
            let options = PackOptions {
                compression,
                symlinks,
                ..PackOptions::default()
            };
            round_trip(&work.path().join("pkg"), ResourceKind::Directory, &options)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn prop_generated_trees_round_trip(children in gen_children(), deflate in any::<bool>()) {
        let work = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        create_generated(work.path(), &children, false)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let options = PackOptions {
            compression: if deflate { Compression::Deflate { level: 6 } } else { Compression::Stored },
            ..PackOptions::default()
        };
        round_trip(work.path(), ResourceKind::Directory, &options)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}
