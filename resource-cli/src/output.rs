//! What the commands print: the JSON shapes are a contract scripts rely on.

use resource_core::{Resource, registry};
use serde::Serialize;

/// A resource as `create --json` and `lookup --json` print it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResourceJson<'a> {
    kind: &'static str,
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
    pub(crate) fn new(resource: &'a Resource) -> Self {
        let (env_name, env_value) = registry::entry(resource);
        Self {
            kind: resource.kind.short_name(),
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
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// The `export` line that registers a resource.
pub(crate) fn export_line(resource: &Resource) -> String {
    let (name, value) = registry::entry(resource);
    registry::export_line(&name, &value)
}

/// A byte counter drawn on standard error when it is a terminal, or nothing on a pipe.
pub(crate) struct ProgressDisplay {
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressDisplay {
    /// A display for `verb` (`stored`, `fetched`), drawn only on a terminal.
    pub(crate) fn new(verb: &str) -> Self {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        let template = format!("{{spinner}} {{bytes}} {verb} ({{bytes_per_sec}}, {{elapsed}})");
        if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self { bar: Some(bar) }
    }

    /// The library callback that advances the display.
    pub(crate) fn callback(&self) -> Option<resource_store::Progress> {
        let bar = self.bar.clone()?;
        Some(resource_store::Progress::new(move |bytes| bar.inc(bytes)))
    }

    /// Removes the display.
    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
