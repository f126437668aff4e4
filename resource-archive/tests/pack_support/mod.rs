//! Helpers shared by the packing tests: building trees on disk, packing them, and reading the
//! archives back with Python's `zipfile` and the `zip` crate as independent readers.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Cursor, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use filetime::FileTime;
use resource_archive::{PackError, PackOptions};
use resource_core::ResourceKind;

/// The result of a test.
pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fixed modification time for the trees built here: 2023-11-14 22:13:20 UTC.
pub(crate) const MTIME: i64 = 1_700_000_000;

/// One node of a tree to build.
#[derive(Debug, Clone)]
pub(crate) enum Node<'a> {
    /// A directory with the given mode.
    Dir(u32),
    /// A file with the given mode and content.
    File(u32, &'a [u8]),
    /// A file with the given mode and `len` bytes of deterministic, partly compressible data.
    Generated(u32, usize),
    /// A symbolic link to the given target.
    Link(&'a str),
}

/// Creates `nodes` under `root` (parents first), then sets their modes and times to `mtime`,
/// children before parents so that creating a child does not move its parent's time.
pub(crate) fn build_tree(root: &Path, nodes: &[(&str, Node<'_>)], mtime: i64) -> io::Result<()> {
    for (path, node) in nodes {
        let path = root.join(path);
        match node {
            Node::Dir(_) => fs::create_dir_all(&path)?,
            Node::File(_, content) => fs::write(&path, content)?,
            Node::Generated(_, len) => fs::write(&path, generated(*len, 7))?,
            Node::Link(target) => symlink(target, &path)?,
        }
    }
    let time = FileTime::from_unix_time(mtime, 0);
    for (path, node) in nodes.iter().rev() {
        let path = root.join(path);
        match node {
            Node::Dir(mode) | Node::File(mode, _) | Node::Generated(mode, _) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))?;
                filetime::set_file_times(&path, time, time)?;
            }
            Node::Link(_) => filetime::set_symlink_file_times(&path, time, time)?,
        }
    }
    filetime::set_file_times(root, time, time)
}

/// `len` bytes of deterministic data: runs of a repeated byte mixed with noise, so deflate
/// shrinks it but not to nothing.
pub(crate) fn generated(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            if (i / 64) % 2 == 0 {
                b'a' + (i / 4096 % 26) as u8
            } else {
                (state >> 33) as u8
            }
        })
        .collect()
}

/// Plans and writes `path` into memory.
pub(crate) fn pack_to_vec(
    path: &Path,
    kind: ResourceKind,
    options: &PackOptions,
) -> Result<Vec<u8>, PackError> {
    let plan = resource_archive::plan(path, kind, options)?;
    let mut archive = Vec::new();
    plan.write(&mut archive)?;
    Ok(archive)
}

/// Reads archives with Python's `zipfile` in one `python3` process: for each archive, runs
/// `testzip()`, lists every entry (name, mode, DOS attributes, sizes, method, DOS time as Unix
/// seconds, `UT` mtime, content in hex) and extracts it all into the matching destination.
pub(crate) const PY_INSPECT: &str = r#"
import calendar, json, struct, sys, zipfile

def extended_mtime(extra):
    while len(extra) >= 4:
        tag, size = struct.unpack("<HH", extra[:4])
        if tag == 0x5455 and size >= 5 and extra[4] & 1:
            return struct.unpack("<i", extra[5:9])[0]
        extra = extra[4 + size:]
    return None

results = []
args = sys.argv[1:]
for archive, dest in zip(args[::2], args[1::2]):
    with zipfile.ZipFile(archive) as zf:
        entries = []
        for info in zf.infolist():
            entries.append({
                "name": info.filename,
                "mode": info.external_attr >> 16,
                "dos": info.external_attr & 0xFF,
                "size": info.file_size,
                "compressed": info.compress_size,
                "method": info.compress_type,
                "flags": info.flag_bits,
                "dos_seconds": calendar.timegm(info.date_time + (0, 0, 0)),
                "ut": extended_mtime(info.extra),
                "system": info.create_system,
                "content": "" if info.is_dir() else zf.read(info).hex(),
            })
        results.append({"bad": zf.testzip(), "entries": entries})
        zf.extractall(dest)
print(json.dumps(results))
"#;

/// Runs `python3 -c script args…` and parses what it prints as JSON.
pub(crate) fn python_json<S: AsRef<OsStr>>(
    script: &str,
    args: &[S],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "python3 failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// What the `zip` crate reads of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZipCrateEntry {
    pub name: String,
    pub unix_mode: Option<u32>,
    pub is_dir: bool,
    pub is_symlink: bool,
    pub content: Vec<u8>,
    pub extended_mtime: Option<u32>,
    pub header_start: u64,
    pub compressed_size: u64,
}

/// Reads every entry of an archive with the `zip` crate, contents included (CRC checked).
pub(crate) fn read_with_zip_crate(
    archive: &[u8],
) -> Result<Vec<ZipCrateEntry>, Box<dyn std::error::Error>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive))?;
    let mut entries = Vec::new();
    for index in 0..zip.len() {
        let mut file = zip.by_index(index)?;
        let mut content = Vec::new();
        file.read_to_end(&mut content)?;
        let extended_mtime = file.extra_data_fields().find_map(|field| match field {
            zip::extra_fields::ExtraField::ExtendedTimestamp(ts) => ts.mod_time(),
            _ => None,
        });
        entries.push(ZipCrateEntry {
            name: file.name()?.into_owned(),
            unix_mode: file.unix_mode(),
            is_dir: file.is_dir(),
            is_symlink: file.is_symlink(),
            content,
            extended_mtime,
            header_start: file.header_start(),
            compressed_size: file.compressed_size(),
        });
    }
    Ok(entries)
}

/// Reads a little-endian u16 at `at`.
pub(crate) fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Reads a little-endian u32 at `at`.
pub(crate) fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// A generated tree node, for property tests.
#[derive(Debug, Clone)]
pub(crate) enum GenNode {
    /// A file.
    File {
        /// Its content.
        content: Vec<u8>,
        /// Its mode, special bits included.
        mode: u32,
        /// Its modification time.
        mtime: i64,
    },
    /// A directory.
    Dir {
        /// Its children by name.
        children: std::collections::BTreeMap<String, GenNode>,
        /// Its mode, special bits included.
        mode: u32,
        /// Its modification time.
        mtime: i64,
    },
}

/// Names with spaces, dots, dashes and non-ASCII letters, never `.` or `..`.
pub(crate) fn gen_name() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::strategy::Strategy;
    "[a-zA-Z0-9 _.é漢字-]{1,10}".prop_filter("not . or ..", |name| name != "." && name != "..")
}

/// The children of a generated directory: files with various modes (exec bits, setuid, read
/// only) and directories, possibly empty, up to a few levels deep.
pub(crate) fn gen_children()
-> impl proptest::strategy::Strategy<Value = std::collections::BTreeMap<String, GenNode>> {
    use proptest::prelude::*;
    let mtime = 0i64..2_000_000_000;
    let file = (
        proptest::collection::vec(any::<u8>(), 0..200),
        prop_oneof![
            Just(0o644u32),
            Just(0o755),
            Just(0o600),
            Just(0o444),
            Just(0o4755)
        ],
        mtime.clone(),
    )
        .prop_map(|(content, mode, mtime)| GenNode::File {
            content,
            mode,
            mtime,
        });
    let node = file.prop_recursive(4, 40, 5, move |inner| {
        (
            proptest::collection::btree_map(gen_name(), inner, 0..5),
            prop_oneof![Just(0o755u32), Just(0o700), Just(0o751), Just(0o1777)],
            mtime.clone(),
        )
            .prop_map(|(children, mode, mtime)| GenNode::Dir {
                children,
                mode,
                mtime,
            })
    });
    proptest::collection::btree_map(gen_name(), node, 0..6)
}

/// Creates a generated tree under the existing directory `root`, visiting names in ascending or
/// descending order, then sets modes and times (children before parents).
pub(crate) fn create_generated(
    root: &Path,
    children: &std::collections::BTreeMap<String, GenNode>,
    descending: bool,
) -> io::Result<()> {
    let ordered: Vec<(&String, &GenNode)> = if descending {
        children.iter().rev().collect()
    } else {
        children.iter().collect()
    };
    for (name, node) in ordered {
        let path = root.join(name);
        match node {
            GenNode::File {
                content,
                mode,
                mtime,
            } => {
                fs::write(&path, content)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))?;
                let time = FileTime::from_unix_time(*mtime, 0);
                filetime::set_file_times(&path, time, time)?;
            }
            GenNode::Dir {
                children,
                mode,
                mtime,
            } => {
                fs::create_dir(&path)?;
                create_generated(&path, children, descending)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))?;
                let time = FileTime::from_unix_time(*mtime, 0);
                filetime::set_file_times(&path, time, time)?;
            }
        }
    }
    Ok(())
}

/// What the archive of a generated tree must list: `(name, unix mode, mtime)` sorted by the
/// bytes of the names, with special bits stripped.
pub(crate) fn expected_entries(
    children: &std::collections::BTreeMap<String, GenNode>,
) -> Vec<(String, u32, i64)> {
    fn collect(
        prefix: &str,
        children: &std::collections::BTreeMap<String, GenNode>,
        out: &mut Vec<(String, u32, i64)>,
    ) {
        for (name, node) in children {
            match node {
                GenNode::File { mode, mtime, .. } => {
                    out.push((
                        format!("{prefix}{name}"),
                        0o100_000 | (mode & 0o777),
                        *mtime,
                    ));
                }
                GenNode::Dir {
                    children,
                    mode,
                    mtime,
                } => {
                    let dir = format!("{prefix}{name}/");
                    out.push((dir.clone(), 0o040_000 | (mode & 0o777), *mtime));
                    collect(&dir, children, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    collect("", children, &mut out);
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out
}
