//! Installed distributions: `*.dist-info` (wheels) and `*.egg-info` metadata, `RECORD` and
//! `direct_url.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{ScanProblem, read_optional, read_optional_bytes};
use crate::names::{is_identifier, split_extension_name};

/// An installed distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// `Name` from the metadata (else from the directory name).
    pub name: String,
    /// `Version` from the metadata (else from the directory name), if any.
    pub version: Option<String>,
    /// How its metadata is stored.
    pub format: DistFormat,
    /// The metadata directory or file.
    pub metadata_path: PathBuf,
    /// Its top-level import names: `top_level.txt`, else derived from `RECORD`.
    pub top_level: Vec<String>,
    /// How many files `RECORD` lists, if it has one.
    pub record_entries: Option<usize>,
    /// `INSTALLER` (such as `pip`).
    pub installer: Option<String>,
    /// `direct_url.json`, if present.
    pub direct_url: Option<DirectUrl>,
    /// Whether it is an editable install (its code lives outside the directory).
    pub editable: bool,
}

/// How a distribution's metadata is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DistFormat {
    /// A `*.dist-info` directory (wheels).
    DistInfo,
    /// A `*.egg-info` directory.
    EggInfo,
    /// A `*.egg-info` file (distutils' single-file `PKG-INFO`).
    EggInfoFile,
}

/// The content of `direct_url.json` (PEP 610) that matters here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectUrl {
    /// `url`.
    pub url: String,
    /// `dir_info.editable`.
    pub editable: bool,
}

/// Reads the RFC 822 header block of a metadata file (up to the first empty line).
fn read_headers(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let file = fs_err::File::open(path).map_err(|err| err.to_string())?;
    parse_headers(BufReader::new(file))
        .map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// The RFC 822 header block read from `reader`: lower-cased keys, the first value of each,
/// continuation lines skipped.
pub(crate) fn parse_headers(mut reader: impl BufRead) -> io::Result<BTreeMap<String, String>> {
    let mut headers = BTreeMap::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if read == 0 || text.is_empty() {
            return Ok(headers);
        }
        if text.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((key, value)) = text.split_once(':') {
            headers
                .entry(key.trim().to_ascii_lowercase())
                .or_insert_with(|| value.trim().to_owned());
        }
    }
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Name and version from a metadata directory name: `foo_bar-1.0.dist-info`, `foo-1.0-py3.11.egg-info`.
pub(crate) fn split_metadata_dir_name(file_name: &str, suffix: &str) -> (String, Option<String>) {
    let stem = file_name.strip_suffix(suffix).unwrap_or(file_name);
    match stem.split_once('-') {
        Some((name, rest)) => {
            let version = rest.split('-').next().unwrap_or(rest);
            (name.to_owned(), Some(version.to_owned()))
        }
        None => (stem.to_owned(), None),
    }
}

pub(super) fn read_dist_info(
    path: &Path,
    file_name: &str,
    problems: &mut Vec<ScanProblem>,
) -> (Distribution, Vec<String>) {
    let (dir_name, dir_version) = split_metadata_dir_name(file_name, ".dist-info");
    let metadata = path.join("METADATA");
    let headers = read_headers(&metadata).unwrap_or_else(|reason| {
        problems.push(ScanProblem {
            path: metadata.clone(),
            reason,
        });
        BTreeMap::new()
    });
    let record = read_optional_bytes(&path.join("RECORD"), problems)
        .map(|bytes| summarize_record(&bytes))
        .unwrap_or_default();
    let record_entries = (record.entries > 0).then_some(record.entries);
    let top_level = match read_optional(&path.join("top_level.txt"), problems) {
        Some(text) => lines_of(&text),
        None => record.top_level,
    };
    let direct_url = read_optional(&path.join("direct_url.json"), problems)
        .and_then(|text| parse_direct_url(&text, &path.join("direct_url.json"), problems));
    let installer = read_optional(&path.join("INSTALLER"), problems)
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let dist = Distribution {
        name: headers.get("name").cloned().unwrap_or(dir_name),
        version: headers.get("version").cloned().or(dir_version),
        format: DistFormat::DistInfo,
        metadata_path: path.to_path_buf(),
        top_level,
        record_entries,
        installer,
        editable: direct_url.as_ref().is_some_and(|d| d.editable),
        direct_url,
    };
    (dist, record.pth_files)
}

pub(super) fn read_egg_info(
    path: &Path,
    file_name: &str,
    is_dir: bool,
    problems: &mut Vec<ScanProblem>,
) -> Distribution {
    let (dir_name, dir_version) = split_metadata_dir_name(file_name, ".egg-info");
    let pkg_info = if is_dir {
        path.join("PKG-INFO")
    } else {
        path.to_path_buf()
    };
    let headers = read_headers(&pkg_info).unwrap_or_else(|reason| {
        problems.push(ScanProblem {
            path: pkg_info.clone(),
            reason,
        });
        BTreeMap::new()
    });
    let top_level = if is_dir {
        read_optional(&path.join("top_level.txt"), problems)
            .map(|text| lines_of(&text))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Distribution {
        name: headers.get("name").cloned().unwrap_or(dir_name),
        version: headers.get("version").cloned().or(dir_version),
        format: if is_dir {
            DistFormat::EggInfo
        } else {
            DistFormat::EggInfoFile
        },
        metadata_path: path.to_path_buf(),
        top_level,
        record_entries: None,
        installer: None,
        direct_url: None,
        editable: false,
    }
}

/// What `RECORD` tells: how many files, the top-level import names of its paths, and the `.pth`
/// files at the top of `site-packages` (where an editable install's pointers are).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordSummary {
    pub(crate) entries: usize,
    pub(crate) top_level: Vec<String>,
    pub(crate) pth_files: Vec<String>,
}

/// The path (first CSV field) of a `RECORD` line, unquoted.
fn record_path(line: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return None;
    }
    let Some(rest) = line.strip_prefix(b"\"") else {
        let end = line.iter().position(|&b| b == b',').unwrap_or(line.len());
        return Some(std::borrow::Cow::Borrowed(&line[..end]));
    };
    let mut out = Vec::new();
    let mut bytes = rest.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if b == b'"' {
            if bytes.peek() != Some(&b'"') {
                return Some(std::borrow::Cow::Owned(out));
            }
            bytes.next();
        }
        out.push(b);
    }
    None
}

/// Reads `RECORD` without allocating per line: only the distinct first path components matter.
pub(crate) fn summarize_record(bytes: &[u8]) -> RecordSummary {
    let mut entries = 0;
    // (first component, whether it is a file at the top)
    let mut firsts: BTreeSet<(Vec<u8>, bool)> = BTreeSet::new();
    let mut last: Option<(Vec<u8>, bool)> = None;
    for line in bytes.split(|&b| b == b'\n') {
        let Some(path) = record_path(line) else {
            continue;
        };
        entries += 1;
        let (first, is_file) = match path.iter().position(|&b| b == b'/') {
            Some(slash) => (&path[..slash], false),
            None => (&path[..], true),
        };
        // RECORD lists files grouped by directory, so most lines repeat the previous component.
        if last
            .as_ref()
            .is_some_and(|(l, f)| l == first && *f == is_file)
        {
            continue;
        }
        let key = (first.to_vec(), is_file);
        firsts.insert(key.clone());
        last = Some(key);
    }
    let mut top_level = BTreeSet::new();
    let mut pth_files = Vec::new();
    for (first, is_file) in &firsts {
        let Ok(first) = std::str::from_utf8(first) else {
            continue;
        };
        if *is_file && first.ends_with(".pth") {
            pth_files.push(first.to_owned());
            continue;
        }
        if first.is_empty()
            || first == ".."
            || first == "__pycache__"
            || first.ends_with(".dist-info")
            || first.ends_with(".data")
            || first.starts_with("__editable__")
        {
            continue;
        }
        let name = if *is_file {
            first
                .strip_suffix(".py")
                .or_else(|| first.strip_suffix(".pyc"))
                .or_else(|| split_extension_name(first).map(|(name, _)| name))
        } else {
            Some(first)
        };
        if let Some(name) = name.filter(|n| is_identifier(n)) {
            top_level.insert(name.to_owned());
        }
    }
    RecordSummary {
        entries,
        top_level: top_level.into_iter().collect(),
        pth_files,
    }
}

pub(crate) fn parse_direct_url(
    text: &str,
    path: &Path,
    problems: &mut Vec<ScanProblem>,
) -> Option<DirectUrl> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => {
            problems.push(ScanProblem {
                path: path.to_path_buf(),
                reason: format!("not JSON: {err}"),
            });
            return None;
        }
    };
    let url = value.get("url")?.as_str()?.to_owned();
    let editable = value
        .get("dir_info")
        .and_then(|d| d.get("editable"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    Some(DirectUrl { url, editable })
}

/// PEP 503 normalisation: lower case, runs of `-`, `_`, `.` as one `-`.
pub(super) fn normalize_dist_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines() {
        assert_eq!(
            record_path(b"a/b.py,sha256=x,1").as_deref(),
            Some(&b"a/b.py"[..])
        );
        assert_eq!(
            record_path(b"\"a,\"\"b\"\".py\",,").as_deref(),
            Some(&b"a,\"b\".py"[..])
        );
        let summary = summarize_record(
            b"pkg/__init__.py,,\npkg/x.py,,\nmod.py,,\nfast.cpython-311-x86_64-linux-gnu.so,,\n\
              x-1.0.dist-info/RECORD,,\n../../bin/tool,,\n__pycache__/mod.cpython-311.pyc,,\n\
              x.pth,,\n__editable___x_finder.py,,\n",
        );
        assert_eq!(summary.entries, 9);
        assert_eq!(summary.top_level, ["fast", "mod", "pkg"]);
        assert_eq!(summary.pth_files, ["x.pth"]);
    }

    #[test]
    fn distribution_names_normalise_as_pep_503_says() {
        assert_eq!(normalize_dist_name("Foo.Bar__baz"), "foo-bar-baz");
    }
}
