//! The deterministic, streaming zip archive of directory and virtualenv resources.

pub mod format;
