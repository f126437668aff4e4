//! What the commands print: the JSON shapes are a contract scripts rely on.
//!
//! Everything goes to standard output through [`print_line`], so that a closed pipe
//! (`resource … | head -1`) ends the command quietly instead of panicking.

use std::fmt::Display;
use std::io::{self, Write};
use std::path::Path;

use resource_core::{Resource, registry};
use serde::Serialize;

/// Standard output was closed by its reader (`| head -1`): the command stops printing and exits
/// 0 without a message, as ripgrep does.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl Display for StdoutClosed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("standard output is closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Prints one line on standard output. A closed pipe becomes [`StdoutClosed`], which `main`
/// turns into a quiet exit 0; any other failure is an error naming standard output.
pub(crate) fn print_line(line: impl Display) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|error| match error.kind() {
            io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
            _ => anyhow::Error::new(error).context("cannot write to standard output"),
        })
}

/// A resource as `create --json` and `lookup --json` print it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResourceJson<'a> {
    kind: &'static str,
    /// The absolute leader path whose hash names the resource.
    leader_path: &'a Path,
    name: &'a str,
    path_hash: &'a str,
    url: &'a str,
    content_hash: &'a str,
    env_name: String,
    env_value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_bytes: Option<u64>,
}

impl<'a> ResourceJson<'a> {
    /// The JSON view of a resource.
    pub(crate) fn new(resource: &'a Resource, leader_path: &'a Path) -> Self {
        let (env_name, env_value) = registry::entry(resource);
        Self {
            kind: resource.kind.short_name(),
            leader_path,
            name: &resource.name,
            path_hash: resource.path_hash.as_str(),
            url: &resource.url,
            content_hash: resource.content_hash.as_str(),
            env_name,
            env_value,
            uploaded: None,
            stored_bytes: None,
        }
    }

    /// Adds what `create` did: whether it uploaded, and the stored size.
    pub(crate) fn with_upload(mut self, uploaded: bool, stored_bytes: u64) -> Self {
        self.uploaded = Some(u8::from(uploaded));
        self.stored_bytes = Some(stored_bytes);
        self
    }
}

/// Prints a value as one line of JSON.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    print_line(serde_json::to_string(value)?)
}

/// The `export` line that registers a resource.
pub(crate) fn export_line(resource: &Resource) -> String {
    let (name, value) = registry::entry(resource);
    registry::export_line(&name, &value)
}

/// A progress bar drawn on standard error when it is a terminal: bytes done of the total, rate
/// and ETA once the total is known. Nothing is drawn on a pipe or with `--quiet`.
pub(crate) struct ProgressDisplay {
    bar: Option<indicatif::ProgressBar>,
    /// The style once the total is known.
    with_total: Option<indicatif::ProgressStyle>,
}

impl ProgressDisplay {
    /// A display for `verb` (`stored`, `fetched`), drawn only on a terminal and unless `quiet`.
    pub(crate) fn new(verb: &str, quiet: bool) -> Self {
        use std::io::IsTerminal;
        if quiet || !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                with_total: None,
            };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        // Until the total is known (a tree is still being planned), a spinner with the bytes.
        let spinner = format!("{{spinner}} {{bytes}} {verb} ({{bytes_per_sec}}, {{elapsed}})");
        if let Ok(style) = indicatif::ProgressStyle::with_template(&spinner) {
            bar.set_style(style);
        }
        let with_total = indicatif::ProgressStyle::with_template(&format!(
            "[{{bar:30}}] {{bytes}}/{{total_bytes}} {verb} ({{bytes_per_sec}}, ETA {{eta}})"
        ))
        .ok()
        .map(|style| style.progress_chars("=> "));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self {
            bar: Some(bar),
            with_total,
        }
    }

    /// The library callback that advances the display and sets its total.
    pub(crate) fn callback(&self) -> Option<resource_store::Progress> {
        let bar = self.bar.clone()?;
        let total_bar = bar.clone();
        let style = self.with_total.clone();
        Some(
            resource_store::Progress::new(move |bytes| bar.inc(bytes)).with_total(move |total| {
                if let Some(style) = &style {
                    total_bar.set_style(style.clone());
                }
                total_bar.set_length(total);
                // Drawn at once, so that even a short transfer shows its total.
                total_bar.tick();
            }),
        )
    }

    /// Removes the display.
    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
