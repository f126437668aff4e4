//! Times module discovery for `cargo xtask bench`: built in release and run as
//! `discovery_timing PYTHON SITE_PACKAGES RUNS`, it prints one JSON object of medians in
//! milliseconds:
//!
//! - `coldQueryMs`: [`query_interpreter`] (always starts the interpreter);
//! - `firstDiscoveryMs`: a script's discovery with an empty in-memory cache (starts it once);
//! - `warmDiscoveryMs`: the same discovery again on the same [`Discoverer`], which must not
//!   start the interpreter (checked: the snapshot must come from memory);
//! - `scanMs`: [`scan_site_packages`] of `SITE_PACKAGES`.

// An example program: it prints its measurements for the benchmark to read.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use resource_modules::{
    Discoverer, FactsCache, InterpreterChoice, ModuleSource, PythonEnv, SnapshotSource,
    query_interpreter, scan_site_packages,
};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [python, site_packages, runs] = args.as_slice() else {
        return Err("usage: discovery_timing PYTHON SITE_PACKAGES RUNS".into());
    };
    let runs: usize = runs.parse()?;
    let site_packages = PathBuf::from(site_packages);
    let choice = InterpreterChoice::new(
        Path::new(python),
        PythonEnv::from_vars(|name| std::env::var(name).ok()),
    );
    let scratch = std::env::temp_dir().join(format!("discovery-timing-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let script = scratch.join("bench_job.py");
    std::fs::write(&script, "import os\n\ndef run():\n    return os.getcwd()\n")?;
    let source = ModuleSource::Script(script);

    let mut cold = Vec::new();
    let mut first = Vec::new();
    let mut warm = Vec::new();
    let mut scan = Vec::new();
    let mut scanned_distributions = 0;
    // One untimed warm-up round, then `runs` timed ones.
    for round in 0..=runs {
        let timed = round > 0;
        let start = Instant::now();
        query_interpreter(&choice)?;
        let cold_ms = ms(start);

        let discoverer = Discoverer::new(choice.clone(), FactsCache::in_memory(), &scratch);
        let start = Instant::now();
        discoverer.discover(&source)?;
        let first_ms = ms(start);
        let start = Instant::now();
        discoverer.discover(&source)?;
        let warm_ms = ms(start);
        if discoverer.snapshot()?.source != SnapshotSource::Memory {
            return Err("the second discovery did not use the in-memory snapshot".into());
        }

        let start = Instant::now();
        let report = scan_site_packages(&site_packages)?;
        let scan_ms = ms(start);
        scanned_distributions = report.distributions.len();
        if timed {
            cold.push(cold_ms);
            first.push(first_ms);
            warm.push(warm_ms);
            scan.push(scan_ms);
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    let json = serde_json::json!({
        "runs": runs,
        "coldQueryMs": median(cold),
        "firstDiscoveryMs": median(first),
        "warmDiscoveryMs": median(warm),
        "scanMs": median(scan),
        "scannedDistributions": scanned_distributions,
    });
    println!("{json}");
    Ok(())
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}
