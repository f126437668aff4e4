//! The streaming archive reader against real Python `zipfile` archives (made the way Toil makes
//! them) and a corpus of hostile archives written byte by byte.

use std::collections::BTreeMap;
use std::error::Error;
use std::ffi::OsStr;
use std::io::{Cursor, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use resource_archive::format::{FLAG_UTF8, unix_to_dos};
use resource_archive::{
    ArchiveIndex, IndexEntryKind, RECOMMENDED_TAIL_LEN, TailParse, UnpackError, UnpackOptions,
    first_tail_len, unpack, unpack_file,
};
use resource_core::ContentHash;

type TestResult<T = ()> = Result<T, Box<dyn Error>>;

// ---------------------------------------------------------------------------------------------
// A tiny zip writer with control over every field, for hostile and unusual archives.
// ---------------------------------------------------------------------------------------------

/// "Version made by": Unix, spec 3.0.
const UNIX: u16 = (3 << 8) | 30;
/// "Version made by": MS-DOS.
const DOS: u16 = 20;

/// Overrides of the local header's fields (default: the central values).
#[derive(Clone, Debug, Default)]
struct Local {
    name: Option<Vec<u8>>,
    method: Option<u16>,
    crc: Option<u32>,
    csize: Option<u64>,
    flags: Option<u16>,
}

#[derive(Clone, Debug)]
struct E {
    name: Vec<u8>,
    /// The bytes stored after the local header (compressed for deflate).
    data: Vec<u8>,
    method: u16,
    crc: u32,
    csize: u64,
    usize: u64,
    flags: u16,
    made_by: u16,
    attr: u32,
    time: u16,
    date: u16,
    central_extra: Vec<u8>,
    local: Local,
    /// A data descriptor after the data: (with signature, 64-bit sizes).
    descriptor: Option<(bool, bool)>,
    /// Bytes of the descriptor to write instead of the right ones.
    descriptor_override: Option<Vec<u8>>,
    /// Sizes and offset through zip64 extra fields.
    zip64: bool,
    /// Bytes between this entry and the next record.
    gap_after: Vec<u8>,
    /// The central directory's local header offset, instead of the real one.
    offset: Option<u64>,
}

fn crc(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

fn deflate(data: &[u8]) -> TestResult<Vec<u8>> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// 2020-01-02 03:04:06 UTC.
const DOS_TIME_UNIX: i64 = 1_577_934_246;

impl E {
    fn stored(name: &str, content: &[u8]) -> E {
        let (time, date) = unix_to_dos(DOS_TIME_UNIX);
        E {
            name: name.as_bytes().to_vec(),
            data: content.to_vec(),
            method: 0,
            crc: crc(content),
            csize: content.len() as u64,
            usize: content.len() as u64,
            flags: if name.is_ascii() { 0 } else { FLAG_UTF8 },
            made_by: UNIX,
            attr: 0o100_644 << 16,
            time,
            date,
            central_extra: Vec::new(),
            local: Local::default(),
            descriptor: None,
            descriptor_override: None,
            zip64: false,
            gap_after: Vec::new(),
            offset: None,
        }
    }

    fn deflated(name: &str, content: &[u8]) -> TestResult<E> {
        let data = deflate(content)?;
        Ok(E {
            method: 8,
            csize: data.len() as u64,
            data,
            ..E::stored(name, content)
        })
    }

    fn dir(name: &str) -> E {
        E {
            attr: (0o40_755 << 16) | 0x10,
            ..E::stored(name, b"")
        }
    }

    fn symlink(name: &str, target: &str) -> E {
        E {
            attr: 0o120_777 << 16,
            ..E::stored(name, target.as_bytes())
        }
    }

    /// Sets the full Unix `st_mode`.
    fn mode(self, mode: u32) -> E {
        E {
            attr: (mode << 16) | (self.attr & 0xffff),
            ..self
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Zip {
    entries: Vec<E>,
    comment: Vec<u8>,
    zip64_end: bool,
    /// The entry count the end record declares, instead of the real one.
    count: Option<u64>,
    /// The disk number the end record declares.
    disk: u16,
}

fn put16(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&(v as u16).to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&(v as u32).to_le_bytes());
}
fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

impl Zip {
    fn of(entries: Vec<E>) -> Zip {
        Zip {
            entries,
            ..Zip::default()
        }
    }

    fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for e in &self.entries {
            offsets.push(out.len() as u64);
            let flags = e.flags | if e.descriptor.is_some() { 8 } else { 0 };
            let (crc, csize, usize) = if e.descriptor.is_some() {
                (0, 0, 0)
            } else {
                (e.crc, e.csize, e.usize)
            };
            let crc = e.local.crc.unwrap_or(crc);
            let csize = e.local.csize.unwrap_or(csize);
            let name = e.local.name.as_ref().unwrap_or(&e.name);
            let mut extra = Vec::new();
            if e.zip64 {
                put16(&mut extra, 1);
                put16(&mut extra, 16);
                put64(&mut extra, usize);
                put64(&mut extra, csize);
            }
            put32(&mut out, 0x0403_4b50);
            put16(&mut out, if e.zip64 { 45 } else { 20 });
            put16(&mut out, u64::from(e.local.flags.unwrap_or(flags)));
            put16(&mut out, u64::from(e.local.method.unwrap_or(e.method)));
            put16(&mut out, u64::from(e.time));
            put16(&mut out, u64::from(e.date));
            put32(&mut out, u64::from(crc));
            put32(&mut out, if e.zip64 { 0xffff_ffff } else { csize });
            put32(&mut out, if e.zip64 { 0xffff_ffff } else { usize });
            put16(&mut out, name.len() as u64);
            put16(&mut out, extra.len() as u64);
            out.extend_from_slice(name);
            out.extend_from_slice(&extra);
            out.extend_from_slice(&e.data);
            if let Some(bytes) = &e.descriptor_override {
                out.extend_from_slice(bytes);
            } else if let Some((signed, wide)) = e.descriptor {
                if signed {
                    put32(&mut out, 0x0807_4b50);
                }
                put32(&mut out, u64::from(e.crc));
                if wide {
                    put64(&mut out, e.csize);
                    put64(&mut out, e.usize);
                } else {
                    put32(&mut out, e.csize);
                    put32(&mut out, e.usize);
                }
            }
            out.extend_from_slice(&e.gap_after);
        }
        let cd_offset = out.len() as u64;
        for (e, &real_offset) in self.entries.iter().zip(&offsets) {
            let offset = e.offset.unwrap_or(real_offset);
            let flags = e.flags | if e.descriptor.is_some() { 8 } else { 0 };
            let mut extra = Vec::new();
            if e.zip64 {
                put16(&mut extra, 1);
                put16(&mut extra, 24);
                put64(&mut extra, e.usize);
                put64(&mut extra, e.csize);
                put64(&mut extra, offset);
            }
            extra.extend_from_slice(&e.central_extra);
            put32(&mut out, 0x0201_4b50);
            put16(&mut out, u64::from(e.made_by));
            put16(&mut out, if e.zip64 { 45 } else { 20 });
            put16(&mut out, u64::from(flags));
            put16(&mut out, u64::from(e.method));
            put16(&mut out, u64::from(e.time));
            put16(&mut out, u64::from(e.date));
            put32(&mut out, u64::from(e.crc));
            put32(&mut out, if e.zip64 { 0xffff_ffff } else { e.csize });
            put32(&mut out, if e.zip64 { 0xffff_ffff } else { e.usize });
            put16(&mut out, e.name.len() as u64);
            put16(&mut out, extra.len() as u64);
            put16(&mut out, 0);
            put16(&mut out, 0);
            put16(&mut out, 0);
            put32(&mut out, u64::from(e.attr));
            put32(&mut out, if e.zip64 { 0xffff_ffff } else { offset });
            out.extend_from_slice(&e.name);
            out.extend_from_slice(&extra);
        }
        let cd_size = out.len() as u64 - cd_offset;
        let count = self.count.unwrap_or(self.entries.len() as u64);
        if self.zip64_end {
            let z = out.len() as u64;
            put32(&mut out, 0x0606_4b50);
            put64(&mut out, 44);
            put16(&mut out, u64::from(UNIX));
            put16(&mut out, 45);
            put32(&mut out, 0);
            put32(&mut out, 0);
            put64(&mut out, count);
            put64(&mut out, count);
            put64(&mut out, cd_size);
            put64(&mut out, cd_offset);
            put32(&mut out, 0x0706_4b50);
            put32(&mut out, 0);
            put64(&mut out, z);
            put32(&mut out, 1);
        }
        put32(&mut out, 0x0605_4b50);
        put16(&mut out, u64::from(self.disk));
        put16(&mut out, u64::from(self.disk));
        let count16 = if self.zip64_end { 0xffff } else { count };
        put16(&mut out, count16);
        put16(&mut out, count16);
        put32(&mut out, if self.zip64_end { 0xffff_ffff } else { cd_size });
        put32(
            &mut out,
            if self.zip64_end {
                0xffff_ffff
            } else {
                cd_offset
            },
        );
        put16(&mut out, self.comment.len() as u64);
        out.extend_from_slice(&self.comment);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Every path below `root`, with what it is and holds (symlinks are not followed).
fn tree(root: &Path) -> TestResult<BTreeMap<PathBuf, Node>> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry?;
        let rel = entry.path().strip_prefix(root)?.to_path_buf();
        let kind = entry.file_type();
        let node = if kind.is_symlink() {
            Node::Link(std::fs::read_link(entry.path())?)
        } else if kind.is_dir() {
            Node::Dir
        } else {
            Node::File(std::fs::read(entry.path())?)
        };
        out.insert(rel, node);
    }
    Ok(out)
}

fn python(script: &str, args: &[&OsStr]) -> TestResult {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

/// Python's `extractall`, as Toil's `DirectoryResource._save` calls it.
fn python_extract(archive: &Path, dest: &Path) -> TestResult {
    python(
        "import sys, zipfile\n\
         with zipfile.ZipFile(sys.argv[1]) as zf:\n    zf.extractall(sys.argv[2])\n",
        &[archive.as_os_str(), dest.as_os_str()],
    )
}

fn mode_of(path: &Path) -> TestResult<u32> {
    Ok(std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777)
}

fn mtime_of(path: &Path) -> TestResult<i64> {
    Ok(std::fs::symlink_metadata(path)?.mtime())
}

/// Deterministic incompressible bytes.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> TestResult {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The two ways [`unpack`] works, forced whatever the archive's length: on the calling thread,
/// and with a writing thread.
fn both_ways(options: &UnpackOptions) -> [(&'static str, UnpackOptions); 2] {
    let mut inline = options.clone();
    inline.inline_max_len = u64::MAX;
    let mut threaded = options.clone();
    threaded.inline_max_len = 0;
    [("inline", inline), ("threaded", threaded)]
}

/// What a path holds, its permission bits, and its modification time if it was restored.
type NodeWithMetadata = (Node, u32, Option<i64>);

/// Every path below `root` with what it holds, its permission bits and its modification time
/// when it was restored (a directory the archive implies, or one written into after its time
/// was set, has the time it was made, which differs from one unpacking to the next).
fn tree_with_metadata(root: &Path) -> TestResult<BTreeMap<PathBuf, NodeWithMetadata>> {
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        .saturating_sub(3600);
    let mut out = BTreeMap::new();
    for (rel, node) in tree(root)? {
        let meta = std::fs::symlink_metadata(root.join(&rel))?;
        let restored = u64::try_from(meta.mtime()).map_or(true, |mtime| mtime < an_hour_ago);
        let mtime = (!matches!(node, Node::Dir) || restored).then_some(meta.mtime());
        out.insert(rel, (node, meta.mode() & 0o7777, mtime));
    }
    Ok(out)
}

/// Unpacks `archive` (in memory) into a fresh directory under `root`, both ways (see
/// [`both_ways`]), which must create the same tree; returns the first.
fn unpack_bytes(
    archive: &[u8],
    root: &Path,
    options: &UnpackOptions,
) -> TestResult<(PathBuf, resource_archive::UnpackSummary)> {
    let file = root.join("archive.zip");
    std::fs::write(&file, archive)?;
    let mut made: Vec<(PathBuf, resource_archive::UnpackSummary)> = Vec::new();
    for (way, options) in both_ways(options) {
        let dest = root.join(format!("dest-{way}"));
        std::fs::create_dir(&dest)?;
        let (summary, hash) = unpack_file(&file, &dest, &options)?;
        assert_eq!(hash, ContentHash::of_bytes(archive), "{way}");
        if let Some((first, first_summary)) = made.first() {
            assert_eq!(&summary, first_summary, "{way}");
            assert_eq!(
                tree_with_metadata(&dest)?,
                tree_with_metadata(first)?,
                "{way}"
            );
        }
        made.push((dest, summary));
    }
    made.into_iter()
        .next()
        .ok_or_else(|| "nothing was unpacked".into())
}

// ---------------------------------------------------------------------------------------------
// Archives made by Python the way Toil makes them.
// ---------------------------------------------------------------------------------------------

/// Toil's `DirectoryResource._load`: files only, named relative to the parent for a package.
const TOIL_DIRECTORY: &str = r#"
import os, sys, zipfile
path, out, method = sys.argv[1], sys.argv[2], int(sys.argv[3])
is_package = os.path.isfile(os.path.join(path, '__init__.py'))
base = os.path.dirname(path) if is_package else path
with zipfile.ZipFile(out, 'w', method) as archive:
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            archive.write(full, os.path.relpath(full, base))
"#;

/// Toil's `VirtualEnvResource._load`, with its quirk: each directory is also written under its
/// absolute path (without the leading `/`), because `write` gets no archive name.
const TOIL_VIRTUALENV: &str = r#"
import os, sys, zipfile
path, out = sys.argv[1], sys.argv[2]
assert os.path.basename(path) == 'site-packages'
with zipfile.ZipFile(out, 'w') as archive:
    for folder, _, names in os.walk(path):
        archive.write(folder)
        for name in names:
            full = os.path.join(folder, name)
            archive.write(full, os.path.relpath(full, path))
"#;

fn make_package(pkg: &Path) -> TestResult {
    write_file(&pkg.join("__init__.py"), b"", 0o644)?;
    write_file(&pkg.join("core.py"), b"def run():\n    return 42\n", 0o644)?;
    write_file(
        &pkg.join("sub/__init__.py"),
        b"from .. import core\n",
        0o644,
    )?;
    write_file(&pkg.join("sub/data.bin"), &noise(300_000, 7), 0o644)?;
    write_file(&pkg.join("sub/empty.txt"), b"", 0o644)?;
    write_file(&pkg.join("bin/run.sh"), b"#!/bin/sh\necho hi\n", 0o755)?;
    write_file(&pkg.join("naïve €.py"), b"x = 1\n", 0o640)?;
    write_file(&pkg.join("deep/a/b/c/d.txt"), b"deep\n", 0o644)?;
    write_file(&pkg.join("back\\slash.txt"), b"backslash\n", 0o644)?;
    std::fs::create_dir_all(pkg.join("emptydir"))?;
    Ok(())
}

fn compare_with_python(archive: &Path, root: &Path) -> TestResult<PathBuf> {
    let py = root.join("python");
    std::fs::create_dir(&py)?;
    python_extract(archive, &py)?;
    let ours = root.join("ours");
    std::fs::create_dir(&ours)?;
    let (summary, hash) = unpack_file(archive, &ours, &UnpackOptions::default())?;
    assert_eq!(hash, ContentHash::of_bytes(&std::fs::read(archive)?));
    let (ours_tree, py_tree) = (tree(&ours)?, tree(&py)?);
    assert_eq!(ours_tree, py_tree);
    let files = ours_tree
        .values()
        .filter(|n| matches!(n, Node::File(_)))
        .count();
    assert_eq!(summary.files, files as u64);
    Ok(ours)
}

#[test]
fn toil_package_archive_extracts_like_python() -> TestResult {
    let root = tempfile::tempdir()?;
    let pkg = root.path().join("src/pkg");
    make_package(&pkg)?;
    let archive = root.path().join("pkg.zip");
    python(
        TOIL_DIRECTORY,
        &[pkg.as_os_str(), archive.as_os_str(), OsStr::new("0")],
    )?;
    let ours = compare_with_python(&archive, root.path())?;
    // A package is rooted at its parent; modes are restored (Python drops them).
    assert!(ours.join("pkg/__init__.py").is_file());
    assert_eq!(mode_of(&ours.join("pkg/bin/run.sh"))?, 0o755);
    assert_eq!(mode_of(&ours.join("pkg/naïve €.py"))?, 0o640);
    assert_eq!(
        std::fs::read(ours.join("pkg/back\\slash.txt"))?,
        b"backslash\n"
    );
    Ok(())
}

#[test]
fn toil_plain_directory_archive_deflated_extracts_like_python() -> TestResult {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("src/scripts");
    write_file(
        &dir.join("flow.py"),
        b"import helper\n".repeat(500).as_slice(),
        0o755,
    )?;
    write_file(&dir.join("helper/x.py"), &noise(70_000, 3), 0o644)?;
    write_file(&dir.join("helper/zeros"), &vec![0; 3_000_000], 0o644)?;
    let archive = root.path().join("dir.zip");
    python(
        TOIL_DIRECTORY,
        &[dir.as_os_str(), archive.as_os_str(), OsStr::new("8")],
    )?;
    let ours = compare_with_python(&archive, root.path())?;
    assert!(ours.join("flow.py").is_file());
    assert_eq!(mode_of(&ours.join("flow.py"))?, 0o755);
    Ok(())
}

#[test]
fn toil_virtualenv_archive_with_absolute_directory_entries_extracts_like_python() -> TestResult {
    let root = tempfile::tempdir()?;
    let site = root.path().join("venv/lib/python3.11/site-packages");
    make_package(&site.join("pkg"))?;
    write_file(&site.join("single.py"), b"y = 2\n", 0o644)?;
    write_file(
        &site.join("pkg-1.0.dist-info/RECORD"),
        b"pkg/__init__.py,,\n",
        0o644,
    )?;
    let archive = root.path().join("venv.zip");
    python(TOIL_VIRTUALENV, &[site.as_os_str(), archive.as_os_str()])?;

    let index = ArchiveIndex::read_from(&mut std::fs::File::open(&archive)?)?;
    let quirk = site.strip_prefix("/")?.to_string_lossy().into_owned() + "/";
    assert!(
        index
            .entries()
            .iter()
            .any(|e| e.name == quirk && e.kind == IndexEntryKind::Directory)
    );

    let ours = compare_with_python(&archive, root.path())?;
    assert!(ours.join("single.py").is_file());
    assert!(ours.join("pkg/sub/data.bin").is_file());
    // The quirk's directories appear, empty of files, as Python makes them.
    assert!(ours.join(site.strip_prefix("/")?).join("pkg/sub").is_dir());
    assert!(
        !ours
            .join(site.strip_prefix("/")?)
            .join("single.py")
            .exists()
    );
    Ok(())
}

#[test]
fn python_data_descriptors_and_zip64_local_headers_are_read() -> TestResult {
    let root = tempfile::tempdir()?;
    let streamed = root.path().join("streamed.zip");
    // An unseekable output makes Python write data descriptors (with their signature).
    python(
        r#"
import sys, zipfile
class Unseekable:
    def __init__(self, f): self.f = f
    def write(self, b): return self.f.write(b)
    def flush(self): self.f.flush()
with open(sys.argv[1], 'wb') as f:
    with zipfile.ZipFile(Unseekable(f), 'w', zipfile.ZIP_DEFLATED) as zf:
        zf.writestr('a.txt', b'hello ' * 10000)
        zf.writestr('b/c.txt', b'')
        zf.writestr('b/d/', b'')
        with zf.open('big.bin', 'w', force_zip64=True) as out:
            out.write(b'zip64 local header ' * 1000)
"#,
        &[streamed.as_os_str()],
    )?;
    let seekable = root.path().join("zip64.zip");
    python(
        r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as zf:
    with zf.open('forced.txt', 'w', force_zip64=True) as out:
        out.write(b'forced zip64')
    zf.writestr('plain.txt', b'plain')
"#,
        &[seekable.as_os_str()],
    )?;
    for archive in [&streamed, &seekable] {
        let case = root.path().join(archive.file_stem().unwrap_or_default());
        std::fs::create_dir(&case)?;
        compare_with_python(archive, &case)?;
    }
    Ok(())
}

/// A stored archive of `entries` files of `file_len` bytes each, under names of 60 bytes, so that
/// its central directory is 106 bytes an entry.
fn stored_archive(entries: usize, file_len: usize) -> TestResult<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let content = vec![7u8; file_len];
    for i in 0..entries {
        zip.start_file(format!("package/module/{i:0>46}"), options)?;
        zip.write_all(&content)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// The tails `read_tail_with` asks for, one length per read, and the index it makes.
fn tails_asked(archive: &[u8]) -> TestResult<(Vec<u64>, ArchiveIndex)> {
    let len = archive.len() as u64;
    let mut asked = Vec::new();
    let index = ArchiveIndex::read_tail_with(len, |want| -> Result<Vec<u8>, std::io::Error> {
        asked.push(want);
        Ok(archive[(len - want) as usize..].to_vec())
    })?;
    Ok((asked, index))
}

#[test]
fn a_large_archive_is_indexed_from_one_tail_read() -> TestResult {
    // 3,000 entries: a central directory of about 318 KB, more than the flat 256 KiB.
    let entries = 3_000;
    // 16 KiB files make a 49 MB archive, whose first tail (1/128 of it) holds that directory.
    let large = stored_archive(entries, 16 << 10)?;
    let (asked, index) = tails_asked(&large)?;
    assert_eq!(asked, [first_tail_len(large.len() as u64)]);
    assert!(asked[0] > RECOMMENDED_TAIL_LEN);
    assert_eq!(index.entries().len(), entries);
    // 4 KiB files make a 12.6 MB archive with the same directory: the first tail is the flat
    // 256 KiB, too short, and the second read asks for exactly the directory and the end record.
    let small = stored_archive(entries, 4 << 10)?;
    let (asked, index) = tails_asked(&small)?;
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0], RECOMMENDED_TAIL_LEN);
    assert_eq!(asked[1], small.len() as u64 - index.central_dir_offset());
    assert_eq!(index.entries().len(), entries);
    Ok(())
}

#[test]
fn python_zip64_archive_with_more_than_65535_entries_is_read() -> TestResult {
    // Creating 65,536 inodes on a busy disk can take a minute; tmpfs takes a second.
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    let archive = root.path().join("many.zip");
    python(
        r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as zf:
    for i in range(65_600):
        zf.writestr(f'd{i % 64}/f{i}', b'')
    zf.writestr('last.txt', b'the end')
"#,
        &[archive.as_os_str()],
    )?;
    let bytes = std::fs::read(&archive)?;
    // The end record says 0xffff entries: only the zip64 record has the count.
    let eocd = bytes.len() - 22;
    assert_eq!(&bytes[eocd + 10..eocd + 12], &[0xff, 0xff]);
    let dest = root.path().join("dest");
    std::fs::create_dir(&dest)?;
    let (summary, hash) = unpack_file(&archive, &dest, &UnpackOptions::default())?;
    assert_eq!(hash, ContentHash::of_bytes(&bytes));
    assert_eq!(summary.files, 65_601);
    assert_eq!(summary.dirs, 64);
    assert_eq!(std::fs::read(dest.join("last.txt"))?, b"the end");
    assert!(dest.join("d63/f65599").is_file());
    Ok(())
}

#[test]
fn names_python_writes_without_the_utf8_flag_are_code_page_437() -> TestResult {
    let root = tempfile::tempdir()?;
    let archive = Zip::of(vec![E {
        name: b"caf\x82.txt".to_vec(),
        flags: 0,
        ..E::stored("x", b"cp437")
    }])
    .build();
    let path = root.path().join("cp437.zip");
    std::fs::write(&path, &archive)?;
    let ours = compare_with_python(&path, root.path())?;
    assert_eq!(std::fs::read(ours.join("café.txt"))?, b"cp437");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What is restored.
// ---------------------------------------------------------------------------------------------

/// The mode a fresh file or directory gets with `mode` under this process's umask.
fn default_mode(root: &Path, dir: bool, mode: u32) -> TestResult<u32> {
    let probe = root.join(if dir { "probe-dir" } else { "probe-file" });
    if dir {
        std::fs::DirBuilder::new().mode(mode).create(&probe)?;
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&probe)?;
    }
    mode_of(&probe)
}

#[test]
fn permission_bits_are_restored_without_setuid_setgid_or_sticky() -> TestResult {
    let root = tempfile::tempdir()?;
    let archive = Zip::of(vec![
        E::stored("suid", b"x").mode(0o104_755),
        E::stored("sgid", b"x").mode(0o102_644),
        E::dir("sticky/").mode(0o41_777),
        E::stored("private", b"x").mode(0o100_600),
        E::stored("exec", b"#!/bin/sh\n").mode(0o100_755),
        E {
            made_by: DOS,
            attr: 0,
            ..E::stored("dosfile", b"x")
        },
        E {
            made_by: DOS,
            attr: 0x10,
            ..E::dir("dosdir/")
        },
        E::stored("nomode", b"x").mode(0o100_000),
        E::dir("ro/").mode(0o40_555),
        E::stored("ro/inside", b"x").mode(0o100_444),
        E::stored("ro/sub/deeper", b"x").mode(0o100_644),
        E::dir("empty/"),
        E::dir("empty/nested/"),
    ])
    .build();
    let (dest, summary) = unpack_bytes(&archive, root.path(), &UnpackOptions::default())?;
    let file_default = default_mode(root.path(), false, 0o644)?;
    let dir_default = default_mode(root.path(), true, 0o755)?;
    for (path, mode) in [
        ("suid", 0o755),
        ("sgid", 0o644),
        ("sticky", 0o777),
        ("private", 0o600),
        ("exec", 0o755),
        ("dosfile", file_default),
        ("dosdir", dir_default),
        ("nomode", file_default),
        ("ro", 0o555),
        ("ro/inside", 0o444),
        ("ro/sub", dir_default),
        ("empty", 0o755),
    ] {
        assert_eq!(mode_of(&dest.join(path))?, mode, "{path}");
    }
    assert!(dest.join("empty/nested").is_dir());
    assert_eq!(std::fs::read_dir(dest.join("empty/nested"))?.count(), 0);
    assert_eq!(summary.files, 8);
    assert_eq!(summary.dirs, 6);
    // Let the temporary directory be removed by a non-root user.
    std::fs::set_permissions(dest.join("ro"), std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn extended_timestamp(mtime: u32) -> Vec<u8> {
    let mut extra = vec![0x55, 0x54, 5, 0, 1];
    extra.extend_from_slice(&mtime.to_le_bytes());
    extra
}

#[test]
fn modification_times_are_restored_after_contents() -> TestResult {
    let root = tempfile::tempdir()?;
    let (dir_time, dir_date) = unix_to_dos(1_600_000_000);
    let archive = Zip::of(vec![
        E::stored("dos.txt", b"dos time"),
        E {
            central_extra: extended_timestamp(1_234_567_890),
            ..E::stored("ut.txt", b"extended timestamp")
        },
        E {
            time: dir_time,
            date: dir_date,
            ..E::dir("d/")
        },
        E::stored("d/f", b"written after its directory"),
        E {
            central_extra: extended_timestamp(1_111_111_111),
            ..E::symlink("link", "d/f")
        },
    ])
    .build();
    let (dest, summary) = unpack_bytes(&archive, root.path(), &UnpackOptions::default())?;
    assert_eq!(mtime_of(&dest.join("dos.txt"))?, DOS_TIME_UNIX);
    assert_eq!(mtime_of(&dest.join("ut.txt"))?, 1_234_567_890);
    assert_eq!(mtime_of(&dest.join("d"))?, 1_600_000_000);
    assert_eq!(mtime_of(&dest.join("link"))?, 1_111_111_111);
    assert_eq!(std::fs::read_link(dest.join("link"))?, Path::new("d/f"));
    assert_eq!(
        std::fs::read(dest.join("link"))?,
        b"written after its directory"
    );
    assert_eq!(summary.symlinks, 1);

    let later = tempfile::tempdir()?;
    let mut options = UnpackOptions::default();
    options.restore_mtimes = false;
    let (dest, _) = unpack_bytes(&archive, later.path(), &options)?;
    assert!(mtime_of(&dest.join("dos.txt"))? > 1_700_000_000);
    Ok(())
}

#[test]
fn safe_symlinks_are_created() -> TestResult {
    let root = tempfile::tempdir()?;
    let archive = Zip::of(vec![
        E::stored("lib/real.py", b"real"),
        E::symlink("lib/alias.py", "real.py"),
        E::symlink("pkg/up.py", "../lib/real.py"),
        E::symlink("here", "."),
        E::symlink("dangling", "nowhere/at/all"),
    ])
    .build();
    let (dest, summary) = unpack_bytes(&archive, root.path(), &UnpackOptions::default())?;
    assert_eq!(std::fs::read(dest.join("lib/alias.py"))?, b"real");
    assert_eq!(std::fs::read(dest.join("pkg/up.py"))?, b"real");
    assert_eq!(std::fs::read_link(dest.join("here"))?, Path::new("."));
    assert_eq!(summary.symlinks, 4);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Layouts: zip64, data descriptors, gaps, comments, tails.
// ---------------------------------------------------------------------------------------------

#[test]
fn zip64_records_and_every_data_descriptor_form_are_read() -> TestResult {
    let root = tempfile::tempdir()?;
    let content = noise(100_000, 11);
    let mut entries = Vec::new();
    for (i, form) in [
        None,
        Some((true, true)),
        Some((true, false)),
        Some((false, true)),
        Some((false, false)),
    ]
    .into_iter()
    .enumerate()
    {
        for zip64 in [false, true] {
            let name = format!("{i}-{zip64}.bin");
            entries.push(E {
                descriptor: form,
                zip64,
                ..E::deflated(&name, &content[..1000 * (i + 1)])?
            });
        }
    }
    entries.push(E {
        descriptor: Some((false, false)),
        ..E::stored("empty-with-descriptor", b"")
    });
    let archive = Zip {
        entries,
        zip64_end: true,
        comment: b"a comment".to_vec(),
        ..Zip::default()
    }
    .build();
    let (dest, summary) = unpack_bytes(&archive, root.path(), &UnpackOptions::default())?;
    assert_eq!(summary.files, 11);
    assert_eq!(std::fs::read(dest.join("4-true.bin"))?, &content[..5000]);
    Ok(())
}

#[test]
fn gaps_between_entries_are_hashed_but_not_extracted() -> TestResult {
    let root = tempfile::tempdir()?;
    let archive = Zip::of(vec![
        E {
            gap_after: b"PK\x03\x04 hidden bytes".to_vec(),
            ..E::stored("a", b"first")
        },
        E {
            gap_after: vec![0; 5000],
            ..E::stored("b", b"second")
        },
    ])
    .build();
    let (dest, summary) = unpack_bytes(&archive, root.path(), &UnpackOptions::default())?;
    assert_eq!(summary.files, 2);
    assert_eq!(tree(&dest)?.len(), 2);
    Ok(())
}

#[test]
fn a_long_comment_and_a_large_central_directory_need_a_longer_tail() -> TestResult {
    let mut entries = Vec::new();
    for i in 0..4000 {
        entries.push(E::stored(&format!("{i:05}/{}", "n".repeat(60)), b""));
    }
    let archive = Zip {
        entries,
        comment: vec![b'c'; 65_535],
        ..Zip::default()
    }
    .build();
    let len = archive.len() as u64;
    let tail = |n: u64| &archive[(len - n) as usize..];
    let TailParse::NeedTail(more) = ArchiveIndex::from_tail(tail(70_000), len)? else {
        return Err("a 70 kB tail cannot hold a 400 kB central directory".into());
    };
    assert!(more > 70_000 && more < len);
    let TailParse::Index(index) = ArchiveIndex::from_tail(tail(more), len)? else {
        return Err("the tail asked for was not enough".into());
    };
    assert_eq!(index.entries().len(), 4000);
    assert_eq!(index, ArchiveIndex::read_from(&mut Cursor::new(&archive))?);

    let root = tempfile::tempdir()?;
    let (_, summary) = unpack_bytes(&archive, root.path(), &UnpackOptions::default())?;
    assert_eq!(summary.files, 4000);
    Ok(())
}

#[test]
fn an_empty_archive_unpacks_to_nothing() -> TestResult {
    let root = tempfile::tempdir()?;
    let archive = root.path().join("empty.zip");
    python(
        "import sys, zipfile\nzipfile.ZipFile(sys.argv[1], 'w').close()\n",
        &[archive.as_os_str()],
    )?;
    assert_eq!(std::fs::metadata(&archive)?.len(), 22);
    let ours = compare_with_python(&archive, root.path())?;
    assert!(tree(&ours)?.is_empty());
    Ok(())
}

#[test]
fn every_tail_length_leads_to_the_same_index() -> TestResult {
    for zip64_end in [false, true] {
        let archive = Zip {
            entries: vec![
                E::stored("a/b.txt", b"hello"),
                E {
                    zip64: zip64_end,
                    ..E::deflated("c.txt", &[7; 1000])?
                },
            ],
            zip64_end,
            comment: b"comment".to_vec(),
            ..Zip::default()
        }
        .build();
        let len = archive.len() as u64;
        let full = match ArchiveIndex::from_tail(&archive, len)? {
            TailParse::Index(index) => index,
            TailParse::NeedTail(_) => return Err("the whole archive is enough".into()),
        };
        for start in 0..=archive.len() {
            let mut tail = &archive[start..];
            let mut rounds = 0;
            let index = loop {
                rounds += 1;
                match ArchiveIndex::from_tail(tail, len)? {
                    TailParse::Index(index) => break index,
                    TailParse::NeedTail(more) => {
                        assert!(more > tail.len() as u64 && more <= len, "{start}: {more}");
                        tail = &archive[(len - more) as usize..];
                    }
                }
            };
            assert!(rounds <= 4);
            assert_eq!(index, full, "tail from {start}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The hostile corpus.
// ---------------------------------------------------------------------------------------------

/// How the stream differs from the archive the index is parsed from.
#[derive(Clone, Copy)]
enum Stream {
    Same,
    /// Only the first bytes.
    Truncated(usize),
    /// Extra bytes at the end.
    Appended(&'static [u8]),
    /// One byte changed, counted from the end.
    FlippedFromEnd(usize),
}

struct Case {
    name: &'static str,
    archive: Vec<u8>,
    stream: Stream,
    options: UnpackOptions,
    /// Puts things into the destination before unpacking (dest, canary).
    prepare: Option<fn(&Path, &Path) -> std::io::Result<()>>,
    expect: fn(&UnpackError) -> bool,
}

fn case(name: &'static str, zip: Zip, expect: fn(&UnpackError) -> bool) -> Case {
    Case {
        name,
        archive: zip.build(),
        stream: Stream::Same,
        options: UnpackOptions::default(),
        prepare: None,
        expect,
    }
}

/// Runs one hostile case both ways (see [`both_ways`]).
fn check(case: &Case) -> Result<(), String> {
    for (way, options) in both_ways(&case.options) {
        check_one_way(case, &options).map_err(|error| format!("{error} ({way})"))?;
    }
    Ok(())
}

/// Runs one hostile case: it must fail with the expected error, and nothing may appear outside
/// the destination (the sibling canary directory stays empty).
fn check_one_way(case: &Case, options: &UnpackOptions) -> Result<(), String> {
    let fail = |what: String| format!("{}: {what}", case.name);
    let io = |e: std::io::Error| fail(e.to_string());
    let root = tempfile::tempdir().map_err(io)?;
    let dest = root.path().join("dest");
    let canary = root.path().join("canary");
    std::fs::create_dir(&dest).map_err(io)?;
    std::fs::create_dir(&canary).map_err(io)?;
    if let Some(prepare) = case.prepare {
        prepare(&dest, &canary).map_err(io)?;
    }
    let mut stream = case.archive.clone();
    match case.stream {
        Stream::Same => {}
        Stream::Truncated(len) => stream.truncate(len),
        Stream::Appended(extra) => stream.extend_from_slice(extra),
        Stream::FlippedFromEnd(back) => {
            let at = stream.len() - back;
            stream[at] ^= 0x20;
        }
    }
    let outcome = ArchiveIndex::read_from(&mut Cursor::new(&case.archive))
        .and_then(|index| unpack(&index, Cursor::new(&stream), &dest, options));
    match outcome {
        Ok(summary) => return Err(fail(format!("unpacked {summary:?} instead of failing"))),
        Err(error) if !(case.expect)(&error) => {
            return Err(fail(format!("unexpected error {error:?} ({error})")));
        }
        Err(_) => {}
    }
    let leaked: Vec<_> = std::fs::read_dir(&canary)
        .map_err(io)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    if !leaked.is_empty() {
        return Err(fail(format!("wrote outside the destination: {leaked:?}")));
    }
    let mut siblings: Vec<_> = std::fs::read_dir(root.path())
        .map_err(io)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    siblings.sort();
    if siblings != ["canary", "dest"] {
        return Err(fail(format!("wrote beside the destination: {siblings:?}")));
    }
    Ok(())
}

fn hostile_cases() -> TestResult<Vec<Case>> {
    use UnpackError as U;
    let one = |e: E| Zip::of(vec![e]);
    let zeros = vec![0u8; 10 << 20];
    let mut cases = vec![
        // Names.
        case("dotdot", one(E::stored("../x", b"x")), |e| {
            matches!(e, U::UnsafeName { .. })
        }),
        case("dotdot inside", one(E::stored("a/../../x", b"x")), |e| {
            matches!(e, U::UnsafeName { .. })
        }),
        case("absolute", one(E::stored("/abs", b"x")), |e| {
            matches!(e, U::UnsafeName { .. })
        }),
        case("nul", one(E::stored("a\0b", b"x")), |e| {
            matches!(e, U::UnsafeName { .. })
        }),
        case("control character", one(E::stored("a\u{1b}b", b"x")), |e| {
            matches!(e, U::UnsafeName { .. })
        }),
        case("newline", one(E::stored("a\nb", b"x")), |e| {
            matches!(e, U::UnsafeName { .. })
        }),
        case("empty name", one(E::stored("", b"x")), |e| {
            matches!(e, U::UnsafeName { .. })
        }),
        case("dot component", one(E::stored("./x", b"x")), |e| {
            matches!(e, U::UnsafeName { .. })
        }),
        case("empty component", one(E::stored("a//x", b"x")), |e| {
            matches!(e, U::UnsafeName { .. })
        }),
        case(
            "invalid UTF-8 flagged UTF-8",
            one(E {
                name: b"a\xffb".to_vec(),
                flags: FLAG_UTF8,
                ..E::stored("x", b"x")
            }),
            |e| matches!(e, U::UnsafeName { .. }),
        ),
        // Duplicates and conflicts.
        case(
            "duplicate",
            Zip::of(vec![E::stored("x", b"1"), E::stored("x", b"2")]),
            |e| matches!(e, U::DuplicateName { .. }),
        ),
        case(
            "file and directory",
            Zip::of(vec![E::stored("d", b"1"), E::dir("d/")]),
            |e| matches!(e, U::DuplicateName { .. }),
        ),
        case(
            "directory twice",
            Zip::of(vec![E::dir("d/"), E::dir("d/")]),
            |e| matches!(e, U::DuplicateName { .. }),
        ),
        case(
            "file under file",
            Zip::of(vec![E::stored("f", b"1"), E::stored("f/g", b"2")]),
            |e| matches!(e, U::PathConflict { .. }),
        ),
        // Symlinks.
        case("symlink absolute", one(E::symlink("l", "/etc")), |e| {
            matches!(e, U::UnsafeSymlink { .. })
        }),
        case("symlink escaping", one(E::symlink("l", "../canary")), |e| {
            matches!(e, U::UnsafeSymlink { .. })
        }),
        case(
            "symlink escaping deeper",
            one(E::symlink("a/l", "../../canary")),
            |e| matches!(e, U::UnsafeSymlink { .. }),
        ),
        case(
            "symlink climbing through a symlink",
            Zip::of(vec![
                E::symlink("a", "."),
                E::symlink("l", "a/../../canary"),
            ]),
            |e| matches!(e, U::UnsafeSymlink { .. }),
        ),
        case("symlink with NUL", one(E::symlink("l", "a\0b")), |e| {
            matches!(e, U::UnsafeSymlink { .. })
        }),
        case(
            "symlink target too long",
            one(E::symlink("l", &"a/".repeat(3000))),
            |e| matches!(e, U::UnsafeSymlink { .. }),
        ),
        case(
            "write through symlink to dot, then dotdot",
            Zip::of(vec![E::symlink("a", "."), E::stored("a/../x", b"x")]),
            |e| matches!(e, U::UnsafeName { .. }),
        ),
        case(
            "write through symlink",
            Zip::of(vec![
                E::dir("sub/"),
                E::symlink("d", "sub"),
                E::stored("d/f", b"x"),
            ]),
            |e| matches!(e, U::ThroughSymlink { .. }),
        ),
        case(
            "write through escaping symlink",
            Zip::of(vec![E::symlink("d", "../canary"), E::stored("d/f", b"x")]),
            |e| matches!(e, U::ThroughSymlink { .. } | U::UnsafeSymlink { .. }),
        ),
        case(
            "file then symlink of the same name",
            Zip::of(vec![E::stored("x", b"x"), E::symlink("x", "y")]),
            |e| matches!(e, U::DuplicateName { .. }),
        ),
        // Special files.
        case("FIFO", one(E::stored("fifo", b"").mode(0o010_644)), |e| {
            matches!(e, U::SpecialFile { .. })
        }),
        case(
            "character device",
            one(E::stored("tty", b"").mode(0o020_666)),
            |e| matches!(e, U::SpecialFile { .. }),
        ),
        case(
            "block device",
            one(E::stored("sda", b"").mode(0o060_660)),
            |e| matches!(e, U::SpecialFile { .. }),
        ),
        case("socket", one(E::stored("sock", b"").mode(0o140_755)), |e| {
            matches!(e, U::SpecialFile { .. })
        }),
        case(
            "directory type without slash",
            one(E::stored("d", b"").mode(0o040_755)),
            |e| matches!(e, U::Malformed { .. }),
        ),
        case(
            "directory with data",
            one(E {
                attr: (0o40_755 << 16) | 0x10,
                ..E::stored("d/", b"data")
            }),
            |e| matches!(e, U::SizeMismatch { .. }),
        ),
        // Encryption and methods.
        case(
            "encrypted",
            one(E {
                flags: 1,
                ..E::stored("secret", b"x")
            }),
            |e| matches!(e, U::Encrypted { .. }),
        ),
        case(
            "bzip2",
            one(E {
                method: 12,
                ..E::stored("b", b"x")
            }),
            |e| matches!(e, U::UnsupportedMethod { method: 12, .. }),
        ),
        case(
            "lzma",
            one(E {
                method: 14,
                ..E::stored("b", b"x")
            }),
            |e| matches!(e, U::UnsupportedMethod { method: 14, .. }),
        ),
        // Lies about content.
        case(
            "CRC lie",
            one(E {
                crc: crc(b"other"),
                ..E::stored("f", b"x")
            }),
            |e| matches!(e, U::CrcMismatch { .. }),
        ),
        case(
            "CRC lie in deflate",
            one(E {
                crc: 0,
                ..E::deflated("f", b"some content")?
            }),
            |e| matches!(e, U::CrcMismatch { .. }),
        ),
        case(
            "stored sizes differ",
            one(E {
                usize: 2,
                ..E::stored("f", b"x")
            }),
            |e| matches!(e, U::HeaderMismatch { .. }),
        ),
        case(
            "deflate holds more than declared",
            one(E {
                usize: 3,
                ..E::deflated("f", b"four")?
            }),
            |e| matches!(e, U::SizeMismatch { declared: 3, .. }),
        ),
        case(
            "deflate holds less than declared",
            one(E {
                usize: 5,
                ..E::deflated("f", b"four")?
            }),
            |e| {
                matches!(
                    e,
                    U::SizeMismatch {
                        declared: 5,
                        actual: 4,
                        ..
                    }
                )
            },
        ),
        case(
            "zip bomb declaring a small size",
            one(E {
                usize: 1000,
                crc: crc(&zeros[..1000]),
                ..E::deflated("bomb", &zeros)?
            }),
            |e| matches!(e, U::SizeMismatch { declared: 1000, .. }),
        ),
        case(
            "corrupt deflate",
            one(E {
                method: 8,
                ..E::stored("f", &[0xff; 20])
            }),
            |e| matches!(e, U::CorruptData { .. }),
        ),
        case(
            "deflate stream cut short",
            one({
                let full = E::deflated("f", &noise(5000, 1))?;
                E {
                    data: full.data[..full.data.len() / 2].to_vec(),
                    csize: (full.data.len() / 2) as u64,
                    ..full
                }
            }),
            |e| matches!(e, U::CorruptData { .. }),
        ),
        case(
            "bytes after the deflate stream",
            one({
                let mut full = E::deflated("f", b"content")?;
                full.data.extend_from_slice(b"junk");
                full.csize += 4;
                full
            }),
            |e| matches!(e, U::CorruptData { .. }),
        ),
        // Local headers and descriptors that disagree with the central directory.
        case(
            "local compressed size lie",
            one(E {
                local: Local {
                    csize: Some(0),
                    ..Local::default()
                },
                ..E::stored("f", b"content")
            }),
            |e| {
                matches!(
                    e,
                    U::HeaderMismatch {
                        field: "compressed size",
                        ..
                    }
                )
            },
        ),
        case(
            "local CRC lie",
            one(E {
                local: Local {
                    crc: Some(1),
                    ..Local::default()
                },
                ..E::stored("f", b"content")
            }),
            |e| {
                matches!(
                    e,
                    U::HeaderMismatch {
                        field: "CRC-32",
                        ..
                    }
                )
            },
        ),
        case(
            "local name differs",
            one(E {
                local: Local {
                    name: Some(b"g".to_vec()),
                    ..Local::default()
                },
                ..E::stored("f", b"content")
            }),
            |e| matches!(e, U::HeaderMismatch { field: "name", .. }),
        ),
        case(
            "local method differs",
            one(E {
                local: Local {
                    method: Some(8),
                    ..Local::default()
                },
                ..E::stored("f", b"content")
            }),
            |e| matches!(e, U::HeaderMismatch { .. }),
        ),
        case(
            "local descriptor flag differs",
            one(E {
                local: Local {
                    flags: Some(8),
                    ..Local::default()
                },
                ..E::stored("f", b"content")
            }),
            |e| matches!(e, U::HeaderMismatch { .. }),
        ),
        case(
            "data descriptor lie",
            one(E {
                descriptor: Some((true, false)),
                descriptor_override: Some(b"PK\x07\x08\0\0\0\0\x07\0\0\0\x07\0\0\0".to_vec()),
                ..E::stored("f", b"content")
            }),
            |e| {
                matches!(
                    e,
                    U::HeaderMismatch {
                        field: "data descriptor",
                        ..
                    }
                )
            },
        ),
        case(
            "no local header",
            one(E {
                offset: Some(1),
                gap_after: vec![0; 64],
                ..E::stored("f", b"content")
            }),
            |e| matches!(e, U::Malformed { .. }),
        ),
        // Layout.
        case(
            "overlapping entries",
            Zip::of(vec![
                E::stored("a", b"same bytes"),
                E {
                    offset: Some(0),
                    ..E::stored("b", b"same bytes")
                },
            ]),
            |e| matches!(e, U::Overlap { .. }),
        ),
        case(
            "entry overlapping the central directory",
            one(E {
                csize: 100,
                usize: 100,
                ..E::stored("f", b"short")
            }),
            |e| matches!(e, U::Overlap { .. }),
        ),
        case(
            "entry count lie",
            Zip {
                count: Some(2),
                ..one(E::stored("f", b"x"))
            },
            |e| matches!(e, U::Malformed { .. }),
        ),
        case(
            "multi-disk",
            Zip {
                disk: 1,
                ..one(E::stored("f", b"x"))
            },
            |e| matches!(e, U::Malformed { .. }),
        ),
    ];

    // Not a zip at all.
    cases.push(Case {
        archive: b"just some text that is not an archive".to_vec(),
        ..case("not a zip", Zip::default(), |e| {
            matches!(e, U::NotAZip { .. })
        })
    });

    // Limits.
    let mut few = UnpackOptions::default();
    few.max_entries = 2;
    cases.push(Case {
        options: few,
        ..case(
            "too many entries",
            Zip::of(vec![
                E::stored("a", b""),
                E::stored("b", b""),
                E::stored("c", b""),
            ]),
            |e| matches!(e, U::TooManyEntries { count: 3, max: 2 }),
        )
    });
    let mut small = UnpackOptions::default();
    small.max_total_bytes = 1 << 20;
    cases.push(Case {
        options: small,
        ..case(
            "zip bomb within its declared size but over the cap",
            Zip::of(vec![
                E::deflated("a", &zeros[..600_000])?,
                E::deflated("b", &zeros[..600_000])?,
            ]),
            |e| matches!(e, U::TooLarge { .. }),
        )
    });

    // The stream differs from the tail.
    let plain = || Zip {
        comment: b"the archive comment".to_vec(),
        ..Zip::of(vec![E::stored("a", b"first"), E::stored("b/c", b"second")])
    };
    cases.push(Case {
        stream: Stream::Truncated(40),
        ..case("truncated in an entry", plain(), |e| {
            matches!(e, U::Truncated { offset: 40, .. })
        })
    });
    cases.push(Case {
        stream: Stream::Truncated(plain().build().len() - 3),
        ..case("truncated in the comment", plain(), |e| {
            matches!(e, U::Truncated { .. })
        })
    });
    cases.push(Case {
        stream: Stream::Truncated(0),
        ..case("empty stream", plain(), |e| {
            matches!(e, U::Truncated { offset: 0, .. })
        })
    });
    cases.push(Case {
        stream: Stream::Appended(b"more"),
        ..case("trailing data", plain(), |e| {
            matches!(e, U::TrailingData { .. })
        })
    });
    cases.push(Case {
        stream: Stream::FlippedFromEnd(5),
        ..case("tail and stream differ", plain(), |e| {
            matches!(e, U::TailMismatch { .. })
        })
    });

    // The destination already holds a symlink.
    cases.push(Case {
        prepare: Some(|dest, canary| std::os::unix::fs::symlink(canary, dest.join("x"))),
        ..case(
            "existing symlinked directory",
            one(E::stored("x/f", b"x")),
            |e| matches!(e, U::ThroughSymlink { .. }),
        )
    });
    cases.push(Case {
        prepare: Some(|dest, canary| std::os::unix::fs::symlink(canary.join("f"), dest.join("f"))),
        ..case(
            "existing symlink at a file's path",
            one(E::stored("f", b"x")),
            |e| matches!(e, U::Filesystem { .. }),
        )
    });
    Ok(cases)
}

#[test]
fn hostile_archives_are_refused_and_nothing_escapes() -> TestResult {
    let cases = hostile_cases()?;
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    if !failures.is_empty() {
        return Err(failures.join("\n").into());
    }
    Ok(())
}

#[test]
fn a_zip_bomb_stops_at_its_declared_size() -> TestResult {
    let root = tempfile::tempdir()?;
    let zeros = vec![0u8; 64 << 20];
    let archive = Zip::of(vec![E {
        usize: 1000,
        crc: crc(&zeros[..1000]),
        ..E::deflated("bomb", &zeros)?
    }])
    .build();
    assert!(archive.len() < 200_000);
    let path = root.path().join("bomb.zip");
    std::fs::write(&path, &archive)?;
    let dest = root.path().join("dest");
    std::fs::create_dir(&dest)?;
    let error = unpack_file(&path, &dest, &UnpackOptions::default()).err();
    let Some(UnpackError::SizeMismatch {
        declared, actual, ..
    }) = error
    else {
        return Err(format!("expected a size mismatch, got {error:?}").into());
    };
    assert_eq!(declared, 1000);
    assert!(actual > 1000 && actual <= 1000 + 256 * 1024);
    assert!(std::fs::metadata(dest.join("bomb"))?.len() <= 1000);
    Ok(())
}

#[test]
fn errors_name_the_entry_and_the_reason() -> TestResult {
    let archive = Zip::of(vec![E::stored("pkg/../../etc/passwd", b"x")]).build();
    let error = ArchiveIndex::read_from(&mut Cursor::new(&archive))
        .err()
        .ok_or("accepted a `..` name")?;
    let message = error.to_string();
    assert!(message.contains("pkg/../../etc/passwd"), "{message}");
    assert!(message.contains(".."), "{message}");
    Ok(())
}

#[test]
fn the_destination_must_be_an_existing_directory() -> TestResult {
    let root = tempfile::tempdir()?;
    let archive = Zip::of(vec![E::stored("a", b"x")]).build();
    let index = ArchiveIndex::read_from(&mut Cursor::new(&archive))?;
    let missing = root.path().join("missing");
    let link = root.path().join("link");
    std::os::unix::fs::symlink(root.path(), &link)?;
    for dest in [missing, link] {
        let outcome = unpack(
            &index,
            Cursor::new(&archive),
            &dest,
            &UnpackOptions::default(),
        );
        assert!(matches!(
            outcome,
            Err(UnpackError::InvalidDestination { .. })
        ));
    }
    assert!(!root.path().join("a").exists());
    Ok(())
}
