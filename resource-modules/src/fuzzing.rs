//! Entry points for the fuzz targets (`resource-fuzz`): the parsers of files a `site-packages`,
//! a virtualenv or an interpreter hands us, on bytes instead of files. Not a stable API.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::interpreter::InterpreterFacts;
use crate::scan::{DirectUrl, PthFile};

/// The header block of a `METADATA` or `PKG-INFO` file.
pub fn metadata_headers(bytes: &[u8]) -> BTreeMap<String, String> {
    // Reading from a slice cannot fail.
    crate::scan::dist::parse_headers(bytes).unwrap_or_default()
}

/// What a `RECORD` file tells: its entries, the top-level import names and the top-level `.pth`
/// files it lists.
pub fn record(bytes: &[u8]) -> (usize, Vec<String>, Vec<String>) {
    let summary = crate::scan::dist::summarize_record(bytes);
    (summary.entries, summary.top_level, summary.pth_files)
}

/// A `direct_url.json`; problems are returned rather than collected.
pub fn direct_url(text: &str) -> (Option<DirectUrl>, usize) {
    let mut problems = Vec::new();
    let parsed =
        crate::scan::dist::parse_direct_url(text, Path::new("direct_url.json"), &mut problems);
    (parsed, problems.len())
}

/// Name and version from a metadata directory's name (`foo-1.0.dist-info`).
pub fn metadata_dir_name(file_name: &str, suffix: &str) -> (String, Option<String>) {
    crate::scan::dist::split_metadata_dir_name(file_name, suffix)
}

/// A `.pth` file's bytes, as found at `<site>/fuzz.pth`.
pub fn pth(site: &Path, bytes: &[u8]) -> PthFile {
    crate::scan::pth::parse_pth(site, &site.join("fuzz.pth"), bytes)
}

/// What a finder's `MAPPING` and `NAMESPACES` hold, when they are literals of the right shape.
pub type FinderLiterals = (
    Option<BTreeMap<String, OsString>>,
    Option<BTreeMap<String, Vec<OsString>>>,
);

/// The `MAPPING` and `NAMESPACES` literals of a setuptools editable finder's source.
pub fn finder_literals(source: &str) -> FinderLiterals {
    (
        crate::pyliteral::str_dict(source, "MAPPING"),
        crate::pyliteral::str_list_dict(source, "NAMESPACES"),
    )
}

/// The path of a `file:` URL in a `direct_url.json` or `.egg-link`.
pub fn editable_file_url(url: &str) -> Option<PathBuf> {
    crate::scan::editable::file_url_path(url)
}

/// The interpreter's answer to the facts query.
pub fn interpreter_facts(bytes: &[u8]) -> Result<InterpreterFacts, serde_json::Error> {
    serde_json::from_slice(bytes)
}
