//! Packing: layout, determinism, what independent readers (Python's `zipfile`, the `zip` crate)
//! make of our archives, and every refusal.

mod pack_support;

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use pack_support::{
    MTIME, Node, TestResult, build_tree, generated, le16, le32, pack_to_vec, python_json,
    read_with_zip_crate,
};
use resource_archive::format::{
    DATA_DESCRIPTOR_SIG, FLAG_DATA_DESCRIPTOR, FLAG_UTF8, LOCAL_HEADER_SIG, ZIP64_LOCATOR_SIG,
};
use resource_archive::{Compression, PackError, PackOptions, PlanEntryKind, SymlinkPolicy};
use resource_core::hash::HashingWriter;
use resource_core::{ContentHash, ResourceKind};

/// A tree touching every feature: exec bits, setuid, an empty directory, an empty file,
/// non-ASCII and space in names, a file of exactly 1 MiB (read whole) and one above (streamed).
fn rich_tree() -> Vec<(&'static str, Node<'static>)> {
    vec![
        ("bin", Node::Dir(0o755)),
        ("bin/run.sh", Node::File(0o755, b"#!/bin/sh\necho hi\n")),
        (
            "bin/setuid",
            Node::File(0o4755, b"setuid and sticky bits are stripped"),
        ),
        ("data", Node::Dir(0o700)),
        ("data/big.bin", Node::Generated(0o644, 1_500_000)),
        ("data/exactly-1MiB", Node::Generated(0o600, 1 << 20)),
        (
            "données é.txt",
            Node::File(0o640, "non-ASCII name".as_bytes()),
        ),
        ("empty-dir", Node::Dir(0o755)),
        ("empty.txt", Node::File(0o644, b"")),
        ("with space.py", Node::File(0o644, b"print('x')\n")),
        ("漢字", Node::Dir(0o751)),
        ("漢字/a.py", Node::File(0o444, b"a = 1\n")),
    ]
}

const RICH_NAMES: [&str; 12] = [
    "bin/",
    "bin/run.sh",
    "bin/setuid",
    "data/",
    "data/big.bin",
    "data/exactly-1MiB",
    "données é.txt",
    "empty-dir/",
    "empty.txt",
    "with space.py",
    "漢字/",
    "漢字/a.py",
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn names(plan: &resource_archive::PackPlan) -> Vec<&str> {
    plan.entries().iter().map(|entry| entry.name()).collect()
}

fn options(compression: Compression) -> PackOptions {
    PackOptions {
        compression,
        ..PackOptions::default()
    }
}

#[test]
fn python_zipfile_reads_and_extracts_stored_and_deflated_archives() -> TestResult {
    let work = tempfile::tempdir()?;
    let root = work.path().join("project");
    fs::create_dir(&root)?;
    build_tree(&root, &rich_tree(), MTIME)?;

    let compressions = [
        Compression::Stored,
        Compression::Deflate { level: 6 },
        Compression::Deflate { level: 0 },
        Compression::Deflate { level: 9 },
    ];
    let mut plans = Vec::new();
    let mut args = Vec::new();
    for (index, compression) in compressions.iter().enumerate() {
        let plan = resource_archive::plan(&root, ResourceKind::Directory, &options(*compression))?;
        assert_eq!(names(&plan), RICH_NAMES);
        let archive = work.path().join(format!("{index}.zip"));
        plan.write(fs::File::create(&archive)?)?;
        args.push(archive.into_os_string());
        args.push(work.path().join(format!("out{index}")).into_os_string());
        plans.push(plan);
    }
    let results = python_json(pack_support::PY_INSPECT, &args)?;

    for (index, plan) in plans.iter().enumerate() {
        let result = &results[index];
        let context = format!("{:?}", compressions[index]);
        assert!(
            result["bad"].is_null(),
            "{context}: testzip found {}",
            result["bad"]
        );
        let entries = result["entries"].as_array().ok_or("no entries")?;
        assert_eq!(entries.len(), plan.entries().len(), "{context}");
        let extracted = work.path().join(format!("out{index}"));
        for (seen, planned) in entries.iter().zip(plan.entries()) {
            let name = planned.name();
            assert_eq!(seen["name"], name, "{context}");
            assert_eq!(seen["mode"], planned.unix_mode(), "{context} {name}");
            assert_eq!(seen["system"], 3, "{context} {name}: made by Unix");
            assert_eq!(seen["ut"], MTIME, "{context} {name}");
            assert_eq!(seen["dos_seconds"], MTIME, "{context} {name}");
            let utf8 = seen["flags"].as_u64().ok_or("flags")? & u64::from(FLAG_UTF8) != 0;
            assert_eq!(utf8, !name.is_ascii(), "{context} {name}");
            let is_dir = *planned.kind() == PlanEntryKind::Directory;
            assert_eq!(seen["dos"] == 0x10, is_dir, "{context} {name}");
            if is_dir {
                assert!(extracted.join(name).is_dir(), "{context} {name}");
                continue;
            }
            let source = fs::read(plan.source_path(planned))?;
            assert_eq!(seen["content"], hex(&source), "{context} {name}");
            assert_eq!(fs::read(extracted.join(name))?, source, "{context} {name}");
            let streamed = source.len() > 1 << 20;
            let descriptor =
                seen["flags"].as_u64().ok_or("flags")? & u64::from(FLAG_DATA_DESCRIPTOR) != 0;
            assert_eq!(descriptor, streamed, "{context} {name}");
            let method = seen["method"].as_u64().ok_or("method")?;
            match compressions[index] {
                Compression::Stored => assert_eq!(method, 0, "{name}"),
                _ if source.is_empty() => assert_eq!(method, 0, "{name}: empty files are stored"),
                _ if streamed => assert_eq!(method, 8, "{context} {name}"),
                // Stored blocks never make a whole file smaller, so it is stored instead.
                Compression::Deflate { level: 0 } => assert_eq!(method, 0, "{context} {name}"),
                _ if source.len() > 4096 => assert_eq!(method, 8, "{context} {name}"),
                _ => {}
            }
        }
    }
    // Setuid, setgid and sticky bits are stripped; exec bits are kept.
    let setuid = plans[0]
        .entries()
        .iter()
        .find(|entry| entry.name() == "bin/setuid")
        .ok_or("bin/setuid")?;
    assert_eq!(setuid.unix_mode(), 0o100_755);
    Ok(())
}

#[test]
fn zip_crate_reads_our_archives() -> TestResult {
    let work = tempfile::tempdir()?;
    let mut nodes = rich_tree();
    nodes.push(("link-to-a", Node::Link("漢字/a.py")));
    build_tree(work.path(), &nodes, MTIME)?;
    for compression in [Compression::Stored, Compression::Deflate { level: 6 }] {
        let options = PackOptions {
            compression,
            symlinks: SymlinkPolicy::Keep,
            ..PackOptions::default()
        };
        let plan = resource_archive::plan(work.path(), ResourceKind::Directory, &options)?;
        let mut archive = Vec::new();
        plan.write(&mut archive)?;
        let entries = read_with_zip_crate(&archive)?;
        assert_eq!(entries.len(), plan.entries().len());
        for (seen, planned) in entries.iter().zip(plan.entries()) {
            let name = planned.name();
            assert_eq!(seen.name, name);
            assert_eq!(seen.unix_mode, Some(planned.unix_mode()), "{name}");
            assert_eq!(seen.extended_mtime, Some(MTIME as u32), "{name}");
            match planned.kind() {
                PlanEntryKind::Directory => assert!(seen.is_dir, "{name}"),
                PlanEntryKind::Symlink { target } => {
                    assert!(seen.is_symlink, "{name}");
                    assert_eq!(seen.content, target.as_bytes());
                    assert_eq!(target, "漢字/a.py");
                    assert_eq!(planned.unix_mode(), 0o120_777);
                }
                PlanEntryKind::File { .. } => {
                    assert_eq!(seen.content, fs::read(plan.source_path(planned))?, "{name}");
                }
                other => return Err(format!("unexpected kind {other:?}").into()),
            }
        }
    }
    Ok(())
}

/// Small files carry CRC and sizes in their local header; larger ones have zeros there and a
/// signed data descriptor after their data. A small archive has no zip64 record at all.
#[test]
fn local_headers_and_data_descriptors_follow_the_spec() -> TestResult {
    let work = tempfile::tempdir()?;
    build_tree(work.path(), &rich_tree(), MTIME)?;
    for compression in [Compression::Stored, Compression::Deflate { level: 1 }] {
        let archive = pack_to_vec(work.path(), ResourceKind::Directory, &options(compression))?;
        let eocd = archive.len() - 22;
        assert_eq!(le32(&archive, eocd), 0x0605_4b50);
        assert_ne!(le32(&archive, eocd - 20), ZIP64_LOCATOR_SIG);
        let mut zip = zip::ZipArchive::new(io::Cursor::new(&archive))?;
        for index in 0..zip.len() {
            let file = zip.by_index(index)?;
            let at = usize::try_from(file.header_start())?;
            assert_eq!(le32(&archive, at), LOCAL_HEADER_SIG);
            let flags = le16(&archive, at + 6);
            let (crc, compressed, size) = (
                le32(&archive, at + 14),
                le32(&archive, at + 18),
                le32(&archive, at + 22),
            );
            let data = at
                + 30
                + usize::from(le16(&archive, at + 26))
                + usize::from(le16(&archive, at + 28));
            if file.size() > 1 << 20 {
                assert_ne!(flags & FLAG_DATA_DESCRIPTOR, 0, "{}", file.name()?);
                assert_eq!((crc, compressed, size), (0, 0, 0));
                let descriptor = data + usize::try_from(file.compressed_size())?;
                assert_eq!(le32(&archive, descriptor), DATA_DESCRIPTOR_SIG);
                assert_eq!(le32(&archive, descriptor + 4), file.crc32());
                assert_eq!(
                    u64::from(le32(&archive, descriptor + 8)),
                    file.compressed_size()
                );
                assert_eq!(u64::from(le32(&archive, descriptor + 12)), file.size());
            } else {
                assert_eq!(flags & FLAG_DATA_DESCRIPTOR, 0, "{}", file.name()?);
                assert_eq!(crc, file.crc32());
                assert_eq!(u64::from(compressed), file.compressed_size());
                assert_eq!(u64::from(size), file.size());
            }
        }
    }
    Ok(())
}

/// One layout case: what to build, what to pack, and the names (or the error) expected.
struct LayoutCase {
    what: &'static str,
    nodes: Vec<(&'static str, Node<'static>)>,
    pack: &'static str,
    kind: ResourceKind,
    expected: Result<Vec<&'static str>, Expect>,
}

#[test]
fn layout_follows_toils_rules() -> TestResult {
    let package = || {
        vec![
            ("src", Node::Dir(0o755)),
            ("src/pkg", Node::Dir(0o755)),
            ("src/pkg/__init__.py", Node::File(0o644, b"")),
            ("src/pkg/sub", Node::Dir(0o755)),
            ("src/pkg/sub/mod.py", Node::File(0o644, b"x = 1\n")),
        ]
    };
    let venv = || {
        vec![
            ("venv/lib/python3.11/site-packages", Node::Dir(0o755)),
            (
                "venv/lib/python3.11/site-packages/six.py",
                Node::File(0o644, b""),
            ),
            ("venv/lib/python3.11/site-packages/dep", Node::Dir(0o755)),
            (
                "venv/lib/python3.11/site-packages/dep/__init__.py",
                Node::File(0o644, b""),
            ),
        ]
    };
    let package_names = vec!["pkg/", "pkg/__init__.py", "pkg/sub/", "pkg/sub/mod.py"];
    let cases = vec![
        LayoutCase {
            what: "a plain directory is rooted at itself",
            nodes: package(),
            pack: "src/pkg/sub",
            kind: ResourceKind::Directory,
            expected: Ok(vec!["mod.py"]),
        },
        LayoutCase {
            what: "a package is rooted at its parent",
            nodes: package(),
            pack: "src/pkg",
            kind: ResourceKind::Directory,
            expected: Ok(package_names.clone()),
        },
        LayoutCase {
            what: "a package given with a trailing slash",
            nodes: package(),
            pack: "src/pkg/",
            kind: ResourceKind::Directory,
            expected: Ok(package_names.clone()),
        },
        LayoutCase {
            what: "a package given with dots",
            nodes: package(),
            pack: "src/pkg/sub/../.",
            kind: ResourceKind::Directory,
            expected: Ok(package_names),
        },
        LayoutCase {
            what: "a virtualenv is rooted at site-packages, package or not",
            nodes: venv(),
            pack: "venv/lib/python3.11/site-packages",
            kind: ResourceKind::VirtualEnv,
            expected: Ok(vec!["dep/", "dep/__init__.py", "six.py"]),
        },
        LayoutCase {
            what: "a virtualenv must be a site-packages directory",
            nodes: venv(),
            pack: "venv/lib/python3.11",
            kind: ResourceKind::VirtualEnv,
            expected: Err(|e| matches!(e, PackError::NotSitePackages { .. })),
        },
        LayoutCase {
            what: "a file resource is not an archive",
            nodes: package(),
            pack: "src/pkg",
            kind: ResourceKind::File,
            expected: Err(|e| matches!(e, PackError::NotAnArchiveKind { .. })),
        },
        LayoutCase {
            what: "a file is not a directory",
            nodes: package(),
            pack: "src/pkg/__init__.py",
            kind: ResourceKind::Directory,
            expected: Err(|e| matches!(e, PackError::NotADirectory { .. })),
        },
        LayoutCase {
            what: "a missing directory",
            nodes: package(),
            pack: "src/nothing",
            kind: ResourceKind::Directory,
            expected: Err(|e| matches!(e, PackError::Io { .. })),
        },
    ];
    for case in cases {
        let work = tempfile::tempdir()?;
        build_tree(work.path(), &case.nodes, MTIME)?;
        let path = work.path().join(case.pack);
        let result = resource_archive::plan(&path, case.kind, &PackOptions::default());
        match (result, case.expected) {
            (Ok(plan), Ok(expected)) => assert_eq!(names(&plan), expected, "{}", case.what),
            (Err(error), Err(matches)) => {
                assert!(matches(&error), "{}: {error:?}", case.what);
                assert!(
                    error.to_string().contains(&path.display().to_string())
                        || matches!(error, PackError::NotAnArchiveKind { .. }),
                    "{}: {error}",
                    case.what
                );
            }
            (result, _) => return Err(format!("{}: got {result:?}", case.what).into()),
        }
    }
    Ok(())
}

/// The same tree gives the same bytes wherever it lives and in whatever order it was created,
/// and these bytes are pinned: a change of format or compressor shows up here.
#[test]
fn archives_are_deterministic_and_pinned() -> TestResult {
    let nodes = rich_tree();
    let mut reversed = nodes.clone();
    // Parents must exist before children: create leaves in reverse order, directories first.
    reversed.sort_by_key(|(path, node)| (!matches!(node, Node::Dir(_)), std::cmp::Reverse(*path)));
    let first = tempfile::tempdir()?;
    let second = tempfile::tempdir_in(shm_or_tmp())?;
    build_tree(first.path(), &nodes, MTIME)?;
    build_tree(second.path(), &reversed, MTIME)?;

    let expected = [
        (Compression::Stored, "950daeddadc25252a0014cc58a56afd2"),
        (
            Compression::Deflate { level: 6 },
            "c59f69a2eae73104d4c22260763179ed",
        ),
    ];
    for (compression, pinned) in expected {
        let options = options(compression);
        let a = pack_to_vec(first.path(), ResourceKind::Directory, &options)?;
        let again = pack_to_vec(first.path(), ResourceKind::Directory, &options)?;
        let b = pack_to_vec(second.path(), ResourceKind::Directory, &options)?;
        assert!(a == again, "{compression}: packing twice differs");
        assert!(
            a == b,
            "{compression}: a copy made in another order differs"
        );
        let hash = ContentHash::of_bytes(&a);
        let plan = resource_archive::plan(second.path(), ResourceKind::Directory, &options)?;
        assert_eq!(plan.measure()?, (a.len() as u64, hash.clone()));
        assert_eq!(hash.as_str(), pinned, "{compression}");
    }
    Ok(())
}

/// Another file system than the temporary directory's when there is one, so that the copy
/// differs in inode order and directory listing order too.
fn shm_or_tmp() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

#[test]
fn modification_times_are_clamped_never_refused() -> TestResult {
    let work = tempfile::tempdir()?;
    let root = work.path();
    build_tree(
        root,
        &[
            ("1970.txt", Node::File(0o644, b"epoch")),
            ("1960.txt", Node::File(0o644, b"before the epoch")),
            ("2200.txt", Node::File(0o644, b"far future")),
            ("now.txt", Node::File(0o644, b"now")),
        ],
        MTIME,
    )?;
    let set = |name: &str, seconds: i64| {
        let time = filetime::FileTime::from_unix_time(seconds, 0);
        filetime::set_file_times(root.join(name), time, time)
    };
    set("1970.txt", 0)?;
    set("1960.txt", -315_619_200)?;
    set("2200.txt", 7_258_118_400)?;

    let clamp = MTIME - 1000;
    let plain = resource_archive::plan(root, ResourceKind::Directory, &PackOptions::default())?;
    let clamped = resource_archive::plan(
        root,
        ResourceKind::Directory,
        &PackOptions {
            mtime_clamp: Some(clamp),
            ..PackOptions::default()
        },
    )?;
    let mtimes = |plan: &resource_archive::PackPlan| -> Vec<i64> {
        plan.entries().iter().map(|entry| entry.mtime()).collect()
    };
    // Sorted: 1960, 1970, 2200, now.
    assert_eq!(mtimes(&plain), [-315_619_200, 0, 7_258_118_400, MTIME]);
    assert_eq!(mtimes(&clamped), [-315_619_200, 0, clamp, clamp]);

    let dir = tempfile::tempdir()?;
    let mut args = Vec::new();
    for (index, plan) in [&plain, &clamped].into_iter().enumerate() {
        let archive = dir.path().join(format!("{index}.zip"));
        plan.write(fs::File::create(&archive)?)?;
        args.push(archive.into_os_string());
        args.push(dir.path().join(format!("out{index}")).into_os_string());
    }
    let results = python_json(pack_support::PY_INSPECT, &args)?;
    let seen = |archive: usize, field: &str| -> Vec<serde_json::Value> {
        results[archive]["entries"]
            .as_array()
            .map(|entries| entries.iter().map(|e| e[field].clone()).collect())
            .unwrap_or_default()
    };
    let dos_min = 315_532_800; // 1980-01-01, the earliest MS-DOS time
    let dos_max = 4_354_819_198; // 2107-12-31 23:59:58, the last one
    assert_eq!(seen(0, "dos_seconds"), [dos_min, dos_min, dos_max, MTIME]);
    assert_eq!(seen(0, "ut"), [-315_619_200, 0, i64::from(i32::MAX), MTIME]);
    assert_eq!(seen(1, "dos_seconds"), [dos_min, dos_min, clamp, clamp]);
    assert_eq!(seen(1, "ut"), [-315_619_200, 0, clamp, clamp]);
    Ok(())
}

#[test]
fn symlinks_are_followed_by_default() -> TestResult {
    let work = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    fs::write(outside.path().join("shared.py"), b"shared")?;
    build_tree(
        work.path(),
        &[
            ("real", Node::Dir(0o755)),
            ("real/x.py", Node::File(0o644, b"x")),
            ("link-dir", Node::Link("real")),
            ("link-file", Node::Link("real/x.py")),
        ],
        MTIME,
    )?;
    symlink(outside.path(), work.path().join("outside"))?;
    let plan = resource_archive::plan(
        work.path(),
        ResourceKind::Directory,
        &PackOptions::default(),
    )?;
    assert_eq!(
        names(&plan),
        [
            "link-dir/",
            "link-dir/x.py",
            "link-file",
            "outside/",
            "outside/shared.py",
            "real/",
            "real/x.py"
        ]
    );
    assert_eq!(
        (plan.file_count(), plan.dir_count(), plan.symlink_count()),
        (4, 3, 0)
    );
    assert_eq!(plan.file_bytes(), 1 + 1 + 6 + 1);
    let entries = read_with_zip_crate(&pack_to_vec(
        work.path(),
        ResourceKind::Directory,
        &PackOptions::default(),
    )?)?;
    assert!(entries.iter().all(|entry| !entry.is_symlink));
    assert_eq!(entries[2].content, b"x");
    assert_eq!(entries[4].content, b"shared");
    Ok(())
}

#[test]
fn kept_symlinks_stay_links_inside_the_tree() -> TestResult {
    let work = tempfile::tempdir()?;
    let pkg = work.path().join("pkg");
    build_tree(
        work.path(),
        &[
            ("pkg", Node::Dir(0o755)),
            ("pkg/__init__.py", Node::File(0o644, b"")),
            ("pkg/a", Node::Dir(0o755)),
            ("pkg/a/up", Node::Link("../b/c.py")),
            ("pkg/b", Node::Dir(0o755)),
            ("pkg/b/c.py", Node::File(0o644, b"c")),
            ("pkg/dir-link", Node::Link("b")),
        ],
        MTIME,
    )?;
    fs::write(work.path().join("outside.txt"), b"outside the package")?;
    let keep = PackOptions {
        symlinks: SymlinkPolicy::Keep,
        ..PackOptions::default()
    };
    let plan = resource_archive::plan(&pkg, ResourceKind::Directory, &keep)?;
    assert_eq!(
        names(&plan),
        [
            "pkg/",
            "pkg/__init__.py",
            "pkg/a/",
            "pkg/a/up",
            "pkg/b/",
            "pkg/b/c.py",
            "pkg/dir-link"
        ]
    );
    assert_eq!(plan.symlink_count(), 2);
    let link = &plan.entries()[3];
    assert_eq!(
        link.kind(),
        &PlanEntryKind::Symlink {
            target: "../b/c.py".to_owned()
        }
    );
    assert_eq!(link.unix_mode(), 0o120_777);

    // Each of these links is refused when kept, and the error names it.
    let refused: [(&str, &str, Expect); 5] = [
        ("escapes", "../outside.txt", |e| {
            matches!(e, PackError::LinkEscapesTree { .. })
        }),
        ("absolute", "/etc/passwd", |e| {
            matches!(e, PackError::LinkEscapesTree { .. })
        }),
        ("sideways", "a/../b", |e| {
            matches!(e, PackError::LinkEscapesTree { .. })
        }),
        ("dangling", "nowhere", |e| {
            matches!(e, PackError::DanglingSymlink { .. })
        }),
        ("self", "self", |e| {
            matches!(e, PackError::SymlinkLoop { .. })
        }),
    ];
    for (name, target, expected) in refused {
        let link = pkg.join(name);
        symlink(target, &link)?;
        let error = resource_archive::plan(&pkg, ResourceKind::Directory, &keep)
            .err()
            .ok_or(format!("{name} -> {target} was kept"))?;
        assert!(expected(&error), "{name}: {error:?}");
        assert!(
            error.to_string().contains(&link.display().to_string()),
            "{error}"
        );
        fs::remove_file(&link)?;
    }
    Ok(())
}

/// A refusal case: builds something under the given directory and returns the path to pack,
/// the options, and the path the error must name.
type Setup = fn(&Path) -> io::Result<(PathBuf, PackOptions, PathBuf)>;

/// Whether an error is the one expected.
type Expect = fn(&PackError) -> bool;

fn refusal(what: &str, setup: Setup, expected: Expect) -> TestResult {
    let work = tempfile::tempdir()?;
    let (path, options, named) = setup(work.path())?;
    let error = resource_archive::plan(&path, ResourceKind::Directory, &options)
        .err()
        .ok_or(format!("{what}: packed without error"))?;
    assert!(expected(&error), "{what}: {error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&named.display().to_string()),
        "{what}: {message:?} does not name {}",
        named.display()
    );
    Ok(())
}

fn tree_with(dir: &Path, leaf: &str) -> io::Result<(PathBuf, PathBuf)> {
    let root = dir.join("tree");
    fs::create_dir_all(root.join("sub"))?;
    fs::write(root.join("a.py"), b"a")?;
    // Named to sort last, so the refusal proves the whole tree is checked before writing.
    Ok((root.clone(), root.join("sub").join(leaf)))
}

#[test]
fn every_refusal_names_the_path() -> TestResult {
    let cases: Vec<(&str, Setup, Expect)> = vec![
        (
            "a named pipe",
            |dir| {
                let (root, fifo) = tree_with(dir, "zz-fifo")?;
                let status = Command::new("mkfifo").arg(&fifo).status()?;
                assert!(status.success(), "mkfifo failed");
                Ok((root, PackOptions::default(), fifo))
            },
            |e| matches!(e, PackError::SpecialFile { kind, .. } if kind.contains("FIFO")),
        ),
        (
            "a socket",
            |dir| {
                let (root, socket) = tree_with(dir, "zz-socket")?;
                drop(UnixListener::bind(&socket)?);
                Ok((root, PackOptions::default(), socket))
            },
            |e| matches!(e, PackError::SpecialFile { kind: "socket", .. }),
        ),
        (
            "a device reached through a followed link",
            |dir| {
                let (root, link) = tree_with(dir, "zz-null")?;
                symlink("/dev/null", &link)?;
                Ok((root, PackOptions::default(), link))
            },
            |e| {
                matches!(
                    e,
                    PackError::SpecialFile {
                        kind: "character device",
                        ..
                    }
                )
            },
        ),
        (
            "a dangling link",
            |dir| {
                let (root, link) = tree_with(dir, "zz-dangling")?;
                symlink("does-not-exist", &link)?;
                Ok((root, PackOptions::default(), link))
            },
            |e| matches!(e, PackError::DanglingSymlink { target, .. } if target == Path::new("does-not-exist")),
        ),
        (
            "a link back to a parent",
            |dir| {
                let (root, link) = tree_with(dir, "zz-loop")?;
                symlink("..", &link)?;
                Ok((root, PackOptions::default(), link))
            },
            |e| matches!(e, PackError::SymlinkLoop { .. }),
        ),
        (
            "a link to itself",
            |dir| {
                let (root, link) = tree_with(dir, "zz-self")?;
                symlink("zz-self", &link)?;
                Ok((root, PackOptions::default(), link))
            },
            |e| matches!(e, PackError::SymlinkLoop { .. }),
        ),
        (
            "a name that is not UTF-8",
            |dir| {
                let (root, bad) = tree_with(dir, "zz")?;
                let bad = bad.with_file_name(OsStr::from_bytes(b"zz-\xff"));
                fs::write(&bad, b"")?;
                Ok((root.clone(), PackOptions::default(), root.join("sub")))
            },
            |e| matches!(e, PackError::NonUtf8Name { .. }),
        ),
        (
            "a newline in a name",
            |dir| {
                let (root, bad) = tree_with(dir, "zz\nnewline")?;
                fs::write(&bad, b"")?;
                Ok((root, PackOptions::default(), bad))
            },
            |e| matches!(e, PackError::ControlCharacterInName { .. }),
        ),
        (
            "the home directory",
            |dir| {
                let home = dir.join("home-of-user");
                fs::create_dir(&home)?;
                let options = PackOptions {
                    home_dir: Some(home.clone()),
                    ..PackOptions::default()
                };
                let given = dir.join("home-of-user/");
                Ok((given.clone(), options, given))
            },
            |e| matches!(e, PackError::DangerousRoot { .. }),
        ),
        (
            "the home directory through a link",
            |dir| {
                let home = dir.join("home-of-user");
                fs::create_dir(&home)?;
                symlink(&home, dir.join("link"))?;
                let options = PackOptions {
                    home_dir: Some(home),
                    ..PackOptions::default()
                };
                Ok((dir.join("link"), options, dir.join("link")))
            },
            |e| matches!(e, PackError::DangerousRoot { .. }),
        ),
        (
            "a malformed exclude glob",
            |dir| {
                let (root, _) = tree_with(dir, "x")?;
                let options = PackOptions {
                    excludes: vec!["[unclosed".to_owned()],
                    ..PackOptions::default()
                };
                Ok((root, options, PathBuf::from("[unclosed")))
            },
            |e| matches!(e, PackError::BadGlob { .. }),
        ),
        (
            "a deflate level above 9",
            |dir| {
                let (root, _) = tree_with(dir, "x")?;
                let options = PackOptions {
                    compression: Compression::Deflate { level: 10 },
                    ..PackOptions::default()
                };
                Ok((root, options, PathBuf::from("10")))
            },
            |e| matches!(e, PackError::BadCompressionLevel { level: 10 }),
        ),
    ];
    for (what, setup, expected) in cases {
        refusal(what, setup, expected)?;
    }
    Ok(())
}

#[test]
fn toils_dangerous_roots_are_refused_however_written() -> TestResult {
    let mut paths = vec![
        "/",
        "/tmp",
        "/tmp/",
        "/tmp/.",
        "/usr/../tmp",
        "/usr/../tmp/",
        "/var",
        "/etc",
        "/bin",
        "/sbin",
        "/home",
        "/home/",
        "/dev",
        "/sys",
        "/usr",
        "/usr/",
        "/run",
        "//usr",
        "/..",
    ];
    // Where `/var/run` is a link to `/run`, it is refused as `/run`.
    if fs::canonicalize("/var/run").is_ok_and(|path| path == Path::new("/run")) {
        paths.push("/var/run");
    }
    for path in paths {
        let error = resource_archive::plan(
            Path::new(path),
            ResourceKind::Directory,
            &PackOptions::default(),
        )
        .err()
        .ok_or(format!("{path} was not refused"))?;
        assert!(
            matches!(error, PackError::DangerousRoot { .. }),
            "{path}: {error:?}"
        );
        assert!(error.to_string().contains(path), "{path}: {error}");
    }
    // Below them is fine: the temporary directories of these tests live in /tmp.
    let below = tempfile::tempdir()?;
    resource_archive::plan(
        below.path(),
        ResourceKind::Directory,
        &PackOptions::default(),
    )?;
    Ok(())
}

/// Runs as a user whom permission bits bind. As root, the test runs itself again under
/// `setpriv` without the capabilities that let root read anything.
#[test]
fn unreadable_files_and_directories_are_refused() -> TestResult {
    const MARKER: &str = "RESOURCE_CORE_PACK_TEST_UNPRIVILEGED";
    let work = tempfile::tempdir()?;
    let probe = work.path().join("probe");
    fs::write(&probe, b"x")?;
    fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o000))?;
    if fs::read(&probe).is_ok() {
        if std::env::var_os(MARKER).is_some() {
            return Err("still privileged under setpriv".into());
        }
        let output = Command::new("setpriv")
            .args([
                "--inh-caps=-dac_override,-dac_read_search",
                "--bounding-set=-dac_override,-dac_read_search",
                "--",
            ])
            .arg(std::env::current_exe()?)
            .args([
                "unreadable_files_and_directories_are_refused",
                "--exact",
                "--test-threads=1",
            ])
            .env(MARKER, "1")
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "the unprivileged run failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return Ok(());
    }

    let root = work.path().join("tree");
    fs::create_dir_all(root.join("locked-dir"))?;
    fs::write(root.join("a.py"), b"a")?;
    fs::write(root.join("secret.py"), b"s")?;
    let mode = |path: &Path, mode: u32| {
        fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
    };
    let check = |named: &Path| -> TestResult {
        let error = resource_archive::plan(&root, ResourceKind::Directory, &PackOptions::default())
            .err()
            .ok_or("packed an unreadable tree")?;
        assert!(matches!(error, PackError::Unreadable { .. }), "{error:?}");
        assert!(
            error.to_string().contains(&named.display().to_string()),
            "{error}"
        );
        Ok(())
    };
    mode(&root.join("secret.py"), 0o200)?;
    check(&root.join("secret.py"))?;
    mode(&root.join("secret.py"), 0o600)?;
    mode(&root.join("locked-dir"), 0o300)?;
    check(&root.join("locked-dir"))?;
    mode(&root.join("locked-dir"), 0o700)?;
    resource_archive::plan(&root, ResourceKind::Directory, &PackOptions::default())?;
    Ok(())
}

#[test]
fn excludes_and_gitignore_are_opt_in() -> TestResult {
    let work = tempfile::tempdir()?;
    build_tree(
        work.path(),
        &[
            (".git", Node::Dir(0o755)),
            (".git/HEAD", Node::File(0o644, b"ref: refs/heads/main\n")),
            (
                ".gitignore",
                Node::File(0o644, b"*.log\nbuild/\nsecret.txt\n"),
            ),
            ("app.log", Node::File(0o644, b"")),
            ("build", Node::Dir(0o755)),
            ("build/out.o", Node::File(0o644, b"")),
            ("docs", Node::Dir(0o755)),
            ("docs/internal.md", Node::File(0o644, b"")),
            ("docs/public.md", Node::File(0o644, b"")),
            ("keep.py", Node::File(0o644, b"")),
            ("keep.pyc", Node::File(0o644, b"")),
            ("src", Node::Dir(0o755)),
            ("src/.gitignore", Node::File(0o644, b"!important.log\n")),
            ("src/__pycache__", Node::Dir(0o755)),
            ("src/__pycache__/m.cpython-311.pyc", Node::File(0o644, b"")),
            ("src/important.log", Node::File(0o644, b"")),
            ("src/other.log", Node::File(0o644, b"")),
            ("src/secret.txt", Node::File(0o644, b"")),
            ("src/m.py", Node::File(0o644, b"")),
            ("src/m.pyc", Node::File(0o644, b"")),
        ],
        MTIME,
    )?;
    let check = |options: PackOptions, expected: &[&str]| -> TestResult {
        let plan = resource_archive::plan(work.path(), ResourceKind::Directory, &options)?;
        assert_eq!(names(&plan), expected, "{options:?}");
        Ok(())
    };
    let everything = [
        ".git/",
        ".git/HEAD",
        ".gitignore",
        "app.log",
        "build/",
        "build/out.o",
        "docs/",
        "docs/internal.md",
        "docs/public.md",
        "keep.py",
        "keep.pyc",
        "src/",
        "src/.gitignore",
        "src/__pycache__/",
        "src/__pycache__/m.cpython-311.pyc",
        "src/important.log",
        "src/m.py",
        "src/m.pyc",
        "src/other.log",
        "src/secret.txt",
    ];
    check(PackOptions::default(), &everything)?;
    check(
        PackOptions {
            excludes: vec![
                "*.pyc".to_owned(),
                "__pycache__".to_owned(),
                "docs/internal.md".to_owned(),
                ".git".to_owned(),
                "src/*.log".to_owned(),
            ],
            ..PackOptions::default()
        },
        &[
            ".gitignore",
            "app.log",
            "build/",
            "build/out.o",
            "docs/",
            "docs/public.md",
            "keep.py",
            "src/",
            "src/.gitignore",
            "src/m.py",
            "src/secret.txt",
        ],
    )?;
    check(
        PackOptions {
            gitignore: true,
            ..PackOptions::default()
        },
        &[
            ".gitignore",
            "docs/",
            "docs/internal.md",
            "docs/public.md",
            "keep.py",
            "keep.pyc",
            "src/",
            "src/.gitignore",
            "src/__pycache__/",
            "src/__pycache__/m.cpython-311.pyc",
            "src/important.log",
            "src/m.py",
            "src/m.pyc",
        ],
    )?;
    // An excluded special file is not an error: excludes apply before the checks.
    let fifo = work.path().join("src/pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status()?.success());
    check(
        PackOptions {
            excludes: vec!["pipe".to_owned(), "*.pyc".to_owned()],
            gitignore: true,
            ..PackOptions::default()
        },
        &[
            ".gitignore",
            "docs/",
            "docs/internal.md",
            "docs/public.md",
            "keep.py",
            "src/",
            "src/.gitignore",
            "src/__pycache__/",
            "src/important.log",
            "src/m.py",
        ],
    )?;
    Ok(())
}

#[test]
fn files_that_change_after_planning_are_refused() -> TestResult {
    type Change = fn(&Path) -> io::Result<()>;
    let cases: [(&str, usize, Change); 5] = [
        ("a small file grows", 10, |path| {
            fs::OpenOptions::new()
                .append(true)
                .open(path)?
                .write_all(b"more")
        }),
        ("a small file shrinks", 10, |path| fs::write(path, b"less")),
        ("a large file grows", 3 << 20, |path| {
            fs::OpenOptions::new()
                .append(true)
                .open(path)?
                .write_all(b"more")
        }),
        ("a large file shrinks", 3 << 20, |path| {
            fs::OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(2 << 20)
        }),
        ("a file is rewritten with the same size", 10, |path| {
            fs::write(path, b"0123456789")?;
            let time = filetime::FileTime::from_unix_time(MTIME + 10, 0);
            filetime::set_file_times(path, time, time)
        }),
    ];
    for (what, len, change) in cases {
        for compression in [Compression::Stored, Compression::Deflate { level: 1 }] {
            let work = tempfile::tempdir()?;
            let file = work.path().join("file.bin");
            fs::write(&file, generated(len, 1))?;
            let time = filetime::FileTime::from_unix_time(MTIME, 0);
            filetime::set_file_times(&file, time, time)?;
            let plan = resource_archive::plan(
                work.path(),
                ResourceKind::Directory,
                &options(compression),
            )?;
            change(&file)?;
            let error = plan
                .write(io::sink())
                .err()
                .ok_or(format!("{what}: no error"))?;
            assert!(
                matches!(&error, PackError::ChangedWhilePacking { path } if *path == file),
                "{what} ({compression}): {error:?}"
            );
            assert!(error.to_string().contains(&file.display().to_string()));
        }
    }
    // A file deleted after planning is an I/O error naming it.
    let work = tempfile::tempdir()?;
    let file = work.path().join("gone.py");
    fs::write(&file, b"x")?;
    let plan = resource_archive::plan(
        work.path(),
        ResourceKind::Directory,
        &PackOptions::default(),
    )?;
    fs::remove_file(&file)?;
    let error = plan.write(io::sink()).err().ok_or("no error")?;
    assert!(
        matches!(&error, PackError::Io { path, .. } if *path == file),
        "{error:?}"
    );
    Ok(())
}

/// Records the size of every write, to show the output only ever gets large writes.
#[derive(Default)]
struct WriteSizes(Vec<usize>);

impl Write for WriteSizes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Fails once `limit` bytes were written.
struct FailingWriter {
    written: usize,
    limit: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() > self.limit {
            return Err(io::Error::other("disk full"));
        }
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_output_gets_only_large_writes_and_its_errors_are_reported() -> TestResult {
    let work = tempfile::tempdir()?;
    let mut nodes: Vec<(String, Node<'static>)> = (0..200)
        .map(|i| {
            (
                format!("small-{i:03}.py"),
                Node::File(0o644, b"print('hello')\n"),
            )
        })
        .collect();
    nodes.push(("large.bin".to_owned(), Node::Generated(0o644, 5 << 20)));
    nodes.push(("medium.bin".to_owned(), Node::Generated(0o644, 300_000)));
    let nodes: Vec<(&str, Node<'_>)> = nodes
        .iter()
        .map(|(path, node)| (path.as_str(), node.clone()))
        .collect();
    build_tree(work.path(), &nodes, MTIME)?;
    for compression in [Compression::Stored, Compression::Deflate { level: 1 }] {
        let plan =
            resource_archive::plan(work.path(), ResourceKind::Directory, &options(compression))?;
        let mut sizes = WriteSizes::default();
        let summary = plan.write(&mut sizes)?;
        let (last, full) = sizes.0.split_last().ok_or("no writes")?;
        assert!(
            full.iter().all(|&len| len == 1 << 20),
            "{compression}: {:?}",
            sizes.0
        );
        assert!(*last > 0 && *last <= 1 << 20);
        assert_eq!(
            sizes.0.iter().sum::<usize>() as u64,
            summary.archive_len,
            "{compression}"
        );
        assert_eq!(summary.entries, 202);
        assert!(!summary.zip64);

        let error = plan
            .write(FailingWriter {
                written: 0,
                limit: 1 << 20,
            })
            .err()
            .ok_or("no error")?;
        assert!(matches!(error, PackError::Output { .. }), "{error:?}");
    }
    Ok(())
}

#[test]
fn measure_matches_what_write_produces() -> TestResult {
    let work = tempfile::tempdir()?;
    build_tree(work.path(), &rich_tree(), MTIME)?;
    let plan = resource_archive::plan(
        work.path(),
        ResourceKind::Directory,
        &PackOptions::default(),
    )?;
    assert_eq!(
        (plan.file_count(), plan.dir_count(), plan.symlink_count()),
        (8, 4, 0)
    );
    let expected_bytes: u64 = 18 + 35 + 1_500_000 + (1 << 20) + 14 + 11 + 6;
    assert_eq!(plan.file_bytes(), expected_bytes);
    let mut out = HashingWriter::new(Vec::new());
    let summary = plan.write(&mut out)?;
    let (archive, hash) = out.finish()?;
    assert_eq!(archive.len() as u64, summary.archive_len);
    assert_eq!(hash, ContentHash::of_bytes(&archive));
    assert_eq!(plan.measure()?, (summary.archive_len, hash));
    Ok(())
}

/// Sends each write to another thread through a channel, as a caller that hashes and uploads
/// on a second core would.
struct ChannelWriter(std::sync::mpsc::SyncSender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::other("the hashing thread stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_writer_can_run_on_one_thread_while_another_hashes() -> TestResult {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<resource_archive::PackPlan>();
    assert_send_sync::<PackError>();

    let work = tempfile::tempdir()?;
    build_tree(work.path(), &rich_tree(), MTIME)?;
    let plan = resource_archive::plan(
        work.path(),
        ResourceKind::Directory,
        &PackOptions::default(),
    )?;
    let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let hasher = std::thread::spawn(move || {
        let mut hashing = HashingWriter::new(io::sink());
        for chunk in received {
            hashing.write_all(&chunk)?;
        }
        let length = hashing.bytes_hashed();
        Ok::<_, io::Error>((length, hashing.finish()?.1))
    });
    let summary = plan.write(ChannelWriter(chunks))?;
    let (length, hash) = hasher.join().map_err(|_| "the hashing thread panicked")??;
    assert_eq!(length, summary.archive_len);
    assert_eq!(plan.measure()?, (length, hash));
    Ok(())
}
