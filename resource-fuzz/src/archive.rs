//! The archive reader: the index from the tail, the unpacking pass, and the `zip` crate as a
//! second opinion on everything we accept.

use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path};
use std::sync::OnceLock;

use resource_archive::format::LOCAL_HEADER_LEN;
use resource_archive::{
    ArchiveIndex, IndexEntryKind, MAX_SYMLINK_TARGET_LEN, TailParse, UnpackError, UnpackOptions,
    UnpackSummary, unpack,
};

use crate::split_choice;

/// The tail parser on arbitrary bytes: the index it gives keeps its documented promises, and
/// growing a short tail as the parser asks ends in the same answer as the whole archive.
pub fn archive_index(data: &[u8]) {
    let len = data.len() as u64;
    let whole = match ArchiveIndex::from_tail(data, len) {
        Ok(TailParse::Index(index)) => {
            check_index(&index, data);
            Some(index)
        }
        Ok(TailParse::NeedTail(more)) => {
            panic!("asked for a tail of {more} bytes when given the whole {len}-byte archive")
        }
        Err(error) => {
            check_refusal(&error);
            None
        }
    };
    for first in [0, 22, 98, 1024] {
        let grown = grow_tail(data, len.min(first));
        assert_eq!(
            grown.as_ref().ok(),
            whole.as_ref(),
            "starting from the last {first} bytes: {grown:?}"
        );
        if let Err(error) = grown {
            check_refusal(&error);
        }
    }
}

/// The tail protocol from the last `first` bytes: every `NeedTail` asks for more than it was
/// given, and at most the archive.
fn grow_tail(data: &[u8], first: u64) -> Result<ArchiveIndex, UnpackError> {
    let len = data.len() as u64;
    let mut want = first;
    loop {
        let tail = &data[(len - want) as usize..];
        match ArchiveIndex::from_tail(tail, len)? {
            TailParse::Index(index) => return Ok(index),
            TailParse::NeedTail(more) => {
                assert!(
                    more > want && more <= len,
                    "given the last {want} of {len} bytes, asked for {more}"
                );
                want = more;
            }
        }
    }
}

/// What an index promises about the archive it was parsed from.
fn check_index(index: &ArchiveIndex, data: &[u8]) {
    let cd = index.central_dir_offset();
    assert_eq!(index.archive_len(), data.len() as u64);
    assert_eq!(index.trailer(), &data[cd as usize..], "the trailer");
    let mut paths = HashSet::new();
    let mut previous_end = 0u64;
    let mut not_dirs = HashSet::new();
    for entry in index.entries() {
        let name = &entry.name;
        assert_eq!(
            entry.kind == IndexEntryKind::Directory,
            name.ends_with('/'),
            "{name:?}: the kind"
        );
        let path = entry.path();
        assert!(is_safe_relative(path), "{name:?}: an unsafe path");
        assert!(paths.insert(path.to_owned()), "{name:?}: a duplicate");
        if entry.kind != IndexEntryKind::Directory {
            not_dirs.insert(path.to_owned());
        }
        if entry.kind == IndexEntryKind::Symlink {
            assert!(entry.uncompressed_size <= MAX_SYMLINK_TARGET_LEN);
        }
        // Entries are in the order of their local headers, which lie before the central
        // directory and do not overlap.
        assert!(
            entry.local_header_offset >= previous_end,
            "{name:?}: overlaps the entry before"
        );
        let data_end = entry
            .local_header_offset
            .saturating_add(LOCAL_HEADER_LEN as u64)
            .saturating_add(entry.compressed_size);
        assert!(data_end <= cd, "{name:?}: runs into the central directory");
        previous_end = data_end;
    }
    for path in &paths {
        let mut prefix = Path::new(path.as_str()).parent();
        while let Some(parent) = prefix.filter(|p| !p.as_os_str().is_empty()) {
            let parent_text = parent.to_string_lossy();
            assert!(
                !not_dirs.contains(parent_text.as_ref()),
                "{path:?} lies below the file or link {parent_text:?}"
            );
            prefix = parent.parent();
        }
    }
    let total = index
        .entries()
        .iter()
        .fold(0u64, |sum, e| sum.saturating_add(e.uncompressed_size));
    assert_eq!(index.total_uncompressed(), total);
}

/// One or more `/`-separated components, none empty, `.` or `..`, and no NUL.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// A refusal names its reason: never an internal error, never an empty message.
fn check_refusal(error: &UnpackError) {
    assert!(
        !matches!(error, UnpackError::Internal { .. }),
        "an internal error: {error}"
    );
    assert!(!error.to_string().is_empty());
}

/// The options of a policy number: every combination of restoring times, a small byte cap, a
/// small entry cap, and unpacking on the calling thread or with a writing thread.
fn policy(choice: u8) -> UnpackOptions {
    let mut options = UnpackOptions::default();
    options.restore_mtimes = choice & 1 != 0;
    if choice & 2 != 0 {
        options.max_total_bytes = 1000;
    }
    if choice & 4 != 0 {
        options.max_entries = 3;
    }
    options.inline_max_len = if choice & 16 != 0 { 0 } else { u64::MAX };
    options
}

/// A fresh directory for one input, on tmpfs when the machine has one.
fn scratch() -> tempfile::TempDir {
    static SHM: OnceLock<bool> = OnceLock::new();
    let shm = *SHM.get_or_init(|| Path::new("/dev/shm").is_dir());
    let mut builder = tempfile::Builder::new();
    builder.prefix("resource-fuzz-");
    let made = if shm {
        builder.tempdir_in("/dev/shm")
    } else {
        builder.tempdir()
    };
    made.unwrap_or_else(|error| panic!("cannot make a scratch directory: {error}"))
}

/// Unpacks `archive` (read as `stream`) into `<scratch>/dest` beside an empty `canary`, checks
/// that nothing appeared outside `dest`, and hands the outcome and the tree to `then`.
fn unpack_beside_canary(
    index: &ArchiveIndex,
    stream: &[u8],
    options: &UnpackOptions,
    then: impl FnOnce(Result<UnpackSummary, UnpackError>, &Path),
) {
    let root = scratch();
    let dest = root.path().join("dest");
    let canary = root.path().join("canary");
    for dir in [&dest, &canary] {
        std::fs::create_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    }
    let outcome = unpack(index, stream, &dest, options);
    let names = |dir: &Path| -> Vec<_> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        names.sort();
        names
    };
    assert_eq!(names(root.path()), ["canary", "dest"], "wrote beside dest");
    assert!(names(&canary).is_empty(), "wrote into the canary");
    then(outcome, &dest);
}

/// Arbitrary bytes unpacked with every policy: no panic, nothing outside the destination, and
/// what a success reports is what the destination holds.
pub fn archive_unpack(data: &[u8]) {
    let (choice, archive) = split_choice(data, 32);
    let Ok(TailParse::Index(index)) = ArchiveIndex::from_tail(archive, archive.len() as u64) else {
        return;
    };
    let options = policy(choice);
    // Policies with bit 8 set read a stream one byte short of the archive the index was parsed
    // from.
    let cut = choice & 8 != 0 && !archive.is_empty();
    let stream = if cut {
        &archive[..archive.len() - 1]
    } else {
        archive
    };
    unpack_beside_canary(&index, stream, &options, |outcome, dest| match outcome {
        Ok(summary) => {
            assert!(!cut, "unpacked a stream shorter than the archive");
            check_tree(&index, dest, summary, &options);
        }
        Err(error) => check_refusal(&error),
    });
}

/// The destination after a successful unpack: every entry as the index says, nothing else, and
/// the summary's counts.
fn check_tree(index: &ArchiveIndex, dest: &Path, summary: UnpackSummary, options: &UnpackOptions) {
    let mut found = UnpackSummary::default();
    walk(dest, dest, &mut found);
    assert_eq!(
        (found.files, found.dirs, found.symlinks, found.bytes),
        (summary.files, summary.dirs, summary.symlinks, summary.bytes),
        "the summary against the tree"
    );
    assert!(summary.bytes <= options.max_total_bytes);
    for entry in index.entries() {
        let path = dest.join(entry.path());
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|error| panic!("{:?} was not created: {error}", entry.name));
        let kind = meta.file_type();
        match entry.kind {
            IndexEntryKind::File => {
                assert!(kind.is_file(), "{:?} is not a file", entry.name);
                assert_eq!(meta.len(), entry.uncompressed_size, "{:?}", entry.name);
                if options.restore_mtimes {
                    assert_eq!(meta.mtime(), entry.mtime, "{:?}: mtime", entry.name);
                }
            }
            IndexEntryKind::Directory => assert!(kind.is_dir(), "{:?}", entry.name),
            IndexEntryKind::Symlink => assert!(kind.is_symlink(), "{:?}", entry.name),
            _ => panic!("{:?}: a kind this check does not know", entry.name),
        }
        if let Some(mode) = entry.mode.filter(|_| entry.kind != IndexEntryKind::Symlink) {
            assert_eq!(
                meta.permissions().mode() & 0o7777,
                mode,
                "{:?}: the mode",
                entry.name
            );
        }
    }
}

/// Counts what `dir` holds, checking that every link created stays inside `dest`.
fn walk(dest: &Path, dir: &Path, found: &mut UnpackSummary) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{dir:?}: {error}"));
    for entry in entries {
        let entry = entry.unwrap_or_else(|error| panic!("{dir:?}: {error}"));
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        if meta.is_dir() {
            found.dirs += 1;
            walk(dest, &path, found);
        } else if meta.file_type().is_symlink() {
            found.symlinks += 1;
            let target = std::fs::read_link(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let link_dir = path.parent().and_then(|p| p.strip_prefix(dest).ok());
            assert!(
                link_dir.is_some_and(|dir| stays_inside(dir, &target)),
                "{path:?} -> {target:?} leaves the tree"
            );
        } else {
            assert!(meta.is_file(), "{path:?} is a special file");
            found.files += 1;
            found.bytes += meta.len();
        }
    }
}

/// Whether `target`, relative to the directory `dir` (itself relative to the tree's root), stays
/// inside the tree, lexically.
fn stays_inside(dir: &Path, target: &Path) -> bool {
    let mut depth = dir.components().count();
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// For every input our reader accepts, the `zip` crate reads the same entries: names, kinds,
/// modes and bytes. What ours refuses, it says why.
pub fn archive_differential(data: &[u8]) {
    let index = match ArchiveIndex::from_tail(data, data.len() as u64) {
        Ok(TailParse::Index(index)) => index,
        Ok(TailParse::NeedTail(more)) => panic!("asked for {more} bytes with the whole archive"),
        Err(error) => return check_refusal(&error),
    };
    let mut options = UnpackOptions::default();
    options.restore_mtimes = false;
    unpack_beside_canary(&index, data, &options, |outcome, dest| match outcome {
        Ok(_) => compare_with_zip_crate(&index, data, dest),
        Err(error) => check_refusal(&error),
    });
}

fn compare_with_zip_crate(index: &ArchiveIndex, data: &[u8], dest: &Path) {
    // We take the end record whose comment reaches the end of the archive; the zip crate (and
    // Python) may take an end record signature inside that comment instead, and then fail or
    // read another directory: such an archive means two things, and only ours is checked.
    let end_records = index
        .trailer()
        .windows(4)
        .filter(|w| *w == b"PK\x05\x06")
        .count();
    let mut theirs = match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(theirs) => theirs,
        Err(_) if end_records > 1 => return,
        Err(error) => panic!("we accept, the zip crate refuses: {error}"),
    };
    if theirs.len() != index.entries().len() && end_records > 1 {
        return;
    }
    assert_eq!(theirs.len(), index.entries().len(), "the number of entries");
    let ours: BTreeMap<&[u8], _> = index.entries().iter().map(|e| (e.raw_name(), e)).collect();
    for i in 0..theirs.len() {
        let mut file = match theirs.by_index(i) {
            Ok(file) => file,
            Err(_) if end_records > 1 => return,
            Err(error) => panic!("the zip crate cannot open entry {i}: {error}"),
        };
        let raw = file.name_raw().to_vec();
        let Some(entry) = ours.get(raw.as_slice()) else {
            panic!("the zip crate reads an entry {raw:?} we do not have");
        };
        let name = &entry.name;
        let their_name = file
            .name()
            .unwrap_or_else(|error| panic!("{name:?}: the zip crate cannot decode it: {error}"))
            .into_owned();
        // Without the UTF-8 flag a name is code page 437, as for Python and Info-ZIP; the zip
        // crate reads such a name as UTF-8 when it is valid UTF-8. The raw bytes match above.
        if entry.flags() & resource_archive::format::FLAG_UTF8 != 0 || raw.is_ascii() {
            assert_eq!(&their_name, name, "the decoded name");
        }
        // The zip crate also calls a name ending in `\` a directory; for us (and Python on Unix)
        // a backslash is an ordinary character.
        assert_eq!(
            their_name.ends_with('/'),
            entry.kind == IndexEntryKind::Directory,
            "{name:?}: directory or not"
        );
        // Like Python and Info-ZIP, we read a Unix mode only from entries made on Unix (or macOS);
        // the zip crate also finds a link in the mode bits of other hosts. Where we read a mode,
        // or made a link, both must agree.
        if entry.mode.is_some() || entry.kind == IndexEntryKind::Symlink {
            assert_eq!(
                file.is_symlink(),
                entry.kind == IndexEntryKind::Symlink,
                "{name:?}: symlink or not"
            );
        }
        if let Some(mode) = entry.mode {
            assert_eq!(
                file.unix_mode().map(|m| m & 0o777),
                Some(mode),
                "{name:?}: the mode"
            );
        }
        let mut content = Vec::new();
        file.read_to_end(&mut content)
            .unwrap_or_else(|error| panic!("{name:?}: the zip crate cannot read it: {error}"));
        let path = dest.join(entry.path());
        let unpacked = match entry.kind {
            IndexEntryKind::File => std::fs::read(&path),
            IndexEntryKind::Symlink => {
                std::fs::read_link(&path).map(|target| target.as_os_str().as_bytes().to_vec())
            }
            _ => continue,
        };
        let unpacked = unpacked.unwrap_or_else(|error| panic!("{path:?}: {error}"));
        assert!(unpacked == content, "{name:?}: the bytes differ");
    }
}
