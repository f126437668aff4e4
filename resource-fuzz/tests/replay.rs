//! Every file of every fuzz target's corpus (`fuzz/corpus/<target>/`) and every crash found and
//! fixed (`fuzz/regressions/<target>/`), through the check the fuzz target runs, on stable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Runs every input of `target`; fails naming each input whose check panicked.
fn replay(target: &str) -> Result<(), String> {
    let mut inputs = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(|error| format!("{}: {error}", dir.display()))?;
            inputs.push(entry.path());
        }
    }
    inputs.sort();
    // A corpus that is missing would make this test pass without checking anything.
    if inputs.len() < 2 {
        return Err(format!("{target}: only {} inputs", inputs.len()));
    }
    let mut failures = Vec::new();
    for input in &inputs {
        let data = std::fs::read(input).map_err(|error| format!("{}: {error}", input.display()))?;
        let outcome = catch_unwind(AssertUnwindSafe(|| resource_fuzz::check(target, &data)));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}", input.display()));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

#[test]
fn every_fuzz_target_has_a_check_and_every_check_a_fuzz_target() -> Result<(), String> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|error| format!("{}: {error}", dir.display()))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut targets: Vec<String> = resource_fuzz::TARGETS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    targets.sort();
    assert_eq!(files, targets);
    Ok(())
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() -> Result<(), String> {
                replay(stringify!($target))
            }
        )*
    };
}

replay_tests!(
    archive_index,
    archive_unpack,
    archive_differential,
    wire,
    dist_metadata,
    pth_pyvenv,
    pyliteral,
    store_locator,
    http_headers,
);
