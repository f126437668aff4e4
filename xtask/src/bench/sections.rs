//! The sections after the archive table: module discovery, one download per node, and S3
//! through moto and through s3s-fs. Each prints its medians, the baseline measured in the same
//! run, and its targets; one that cannot run says "not available: `<reason>`".

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::report::Target;

/// One measured value of a section.
#[derive(Debug, Serialize)]
pub(super) struct Value {
    /// What was measured.
    pub what: String,
    /// The median (or count).
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// One section of the report.
#[derive(Debug, Serialize)]
pub(super) struct Section {
    /// Heading.
    pub title: &'static str,
    /// Why nothing was measured.
    pub not_available: Option<String>,
    /// Medians, baselines and counts.
    pub values: Vec<Value>,
    /// Checked targets.
    pub targets: Vec<Target>,
}

impl Section {
    /// An empty section.
    pub(super) fn new(title: &'static str) -> Self {
        Self {
            title,
            not_available: None,
            values: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// The section of a suite that failed with `error`.
    pub(super) fn unavailable(title: &'static str, error: &anyhow::Error) -> Self {
        let mut section = Self::new(title);
        section.not_available = Some(format!("not available: {error:#}"));
        section
    }

    /// Records a measured value.
    pub(super) fn value(&mut self, what: impl Into<String>, value: f64, unit: &'static str) {
        self.values.push(Value {
            what: what.into(),
            value,
            unit,
        });
    }

    /// Records a target: `value <= limit`.
    pub(super) fn target(&mut self, what: impl Into<String>, value: f64, limit: f64) {
        self.targets.push(Target {
            what: what.into(),
            value,
            limit,
            met: value <= limit,
        });
    }

    /// Prints the section.
    pub(super) fn print(&self) {
        println!("\n{}", self.title);
        if let Some(reason) = &self.not_available {
            println!("  {reason}");
            return;
        }
        for value in &self.values {
            println!("  {:<44} {:>10.3} {}", value.what, value.value, value.unit);
        }
        for target in &self.targets {
            println!(
                "  {:<44} {:>10.3}  (target <= {:.2})  {}",
                target.what,
                target.value,
                target.limit,
                if target.met { "met" } else { "NOT MET" }
            );
        }
    }
}

/// Adds `sections` to the JSON object the report wrote at `path`, as `"sections"`.
pub(super) fn add_to_json(path: &Path, sections: &[Section]) -> Result<()> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let object = json
        .as_object_mut()
        .with_context(|| format!("{} is not a JSON object", path.display()))?;
    object.insert("sections".to_owned(), serde_json::to_value(sections)?);
    fs::write(path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
