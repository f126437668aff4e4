//! What every fuzz target checks, as plain functions of the input bytes.
//!
//! Each function panics when a property fails, and only then: that is what libFuzzer reports as a
//! crash. The fuzz targets in `fuzz/` (cargo-fuzz, nightly) are one line each around these
//! functions, and `tests/replay.rs` feeds every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` through the same functions on stable, so a regression fails the
//! ordinary test run.
//!
//! ```
//! // A zip made by the `zip` crate is read alike by both readers, and unpacked safely.
//! use std::io::{Cursor, Write};
//! let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
//! zip.start_file("pkg/__init__.py", zip::write::SimpleFileOptions::default())?;
//! zip.write_all(b"VALUE = 1\n")?;
//! let archive = zip.finish()?.into_inner();
//! resource_fuzz::check("archive_differential", &archive);
//! resource_fuzz::check("wire", b"toil.resource.FileResource:[]");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod archive;
mod modules;
mod store;
mod wire;

pub use archive::{archive_differential, archive_index, archive_unpack};
pub use modules::{dist_metadata, pth_pyvenv, pyliteral};
pub use store::{http_headers, store_locator};
pub use wire::wire;

/// What a fuzz target does with one input: panics when a property fails.
pub type Check = fn(&[u8]);

/// Every fuzz target, by name, with its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("archive_index", archive_index),
    ("archive_unpack", archive_unpack),
    ("archive_differential", archive_differential),
    ("wire", wire),
    ("dist_metadata", dist_metadata),
    ("pth_pyvenv", pth_pyvenv),
    ("pyliteral", pyliteral),
    ("store_locator", store_locator),
    ("http_headers", http_headers),
];

/// Runs the check of the target named `target` on `data`.
///
/// # Panics
///
/// When the property fails, and for a name that is not in [`TARGETS`].
pub fn check(target: &str, data: &[u8]) {
    match TARGETS.iter().find(|(name, _)| *name == target) {
        Some((_, check)) => check(data),
        None => panic!("no fuzz target named {target:?}"),
    }
}

/// The first byte as a choice among `n`, and the rest.
fn split_choice(data: &[u8], n: u8) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (first % n, rest),
        None => (0, data),
    }
}
