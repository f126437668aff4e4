//! One download per node: 16 `resource download` processes started together on one resource
//! served over HTTP ([`HttpFileServer`]) must take at most 1.3× one download, and the server
//! must send the object once (one whole copy, in one stream or in ranges).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use resource_store::testing::HttpFileServer;

use super::contenders::{CreatedResource, Sample};
use super::prng::SplitMix64;
use super::report::Series;
use super::reset_dir;
use super::sections::Section;
use crate::run::{measure, tail};

const TITLE: &str = "one download per node (HTTP, 16 processes at once)";
/// 16 processes together must take at most this many times one download.
const SIXTEEN_VS_ONE: f64 = 1.3;
const PROCESSES: usize = 16;

/// Runs the section; failures become "not available".
pub(super) fn run(
    ours: &Result<PathBuf, String>,
    bench_root: &Path,
    work: &Path,
    quick: bool,
    runs: usize,
) -> Section {
    ours.as_ref()
        .map_err(|reason| anyhow!("ours {reason}"))
        .and_then(|binary| measure_fanout(binary, bench_root, work, quick, runs))
        .unwrap_or_else(|error| Section::unavailable(TITLE, &error))
}

fn measure_fanout(
    binary: &Path,
    bench_root: &Path,
    work: &Path,
    quick: bool,
    runs: usize,
) -> Result<Section> {
    let mib: usize = if quick { 32 } else { 256 };
    let input = seeded_file(&bench_root.join("fanout"), mib)?;
    let object_len = (mib as u64) << 20;
    let work = work.join("fanout");
    reset_dir(&work)?;
    let store = work.join("store");
    let created = measure(
        Command::new(binary)
            .arg("create")
            .arg(&input)
            .arg("--store")
            .arg(&store)
            .arg("--json"),
    )?;
    let created = CreatedResource::parse(&created.stdout)?;
    let server =
        HttpFileServer::serve(&store.join("shared")).context("starting the HTTP server")?;
    // Workers see the resource at an http URL: rewrite the registered URL.
    let path_hash = created.path_hash;
    let env_name = created.env_name;
    let env_value = created
        .env_value
        .replace(&created.url, &server.url(&path_hash));
    let download = |root: &Path| {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("JTRES_ROOT", root)
            .env(&env_name, &env_value)
            .arg("download")
            .arg(&input)
            .arg("--root")
            .arg(root);
        command
    };

    let mut one = Vec::new();
    let mut sixteen = Vec::new();
    let mut copies_sent = Vec::new();
    for round in 0..=runs {
        print!("{}", if round == 0 { "warm-up:" } else { " run" });
        std::io::stdout().flush()?;
        let root = work.join("root-one");
        reset_dir(&root)?;
        let single = measure(&mut download(&root))?;
        let root = work.join("root-sixteen");
        reset_dir(&root)?;
        let before = server.counts(&path_hash).bytes_sent;
        let start = Instant::now();
        let children: Vec<Child> = (0..PROCESSES)
            .map(|_| {
                download(&root)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect::<Result<_, _>>()
            .context("starting 16 downloads")?;
        let mut failures = Vec::new();
        for child in children {
            let output = child.wait_with_output()?;
            if !output.status.success() {
                failures.push(tail(&String::from_utf8_lossy(&output.stderr), 5));
            }
        }
        let wall = start.elapsed().as_secs_f64();
        if let Some(first) = failures.first() {
            bail!("{} of 16 downloads failed: {first}", failures.len());
        }
        if round > 0 {
            one.push(Sample::of(&single, None));
            // The 16 are reaped without `wait4`; their RSS is not part of this target.
            sixteen.push(Sample {
                wall_s: wall,
                op_s: None,
                peak_rss_mib: 0.0,
                cpu_s: 0.0,
            });
            // Whole copies: the size probe's byte on top of one copy is still one.
            let sent = server.counts(&path_hash).bytes_sent - before;
            copies_sent.push(sent / object_len);
        }
    }
    println!();
    reset_dir(&work)?;

    let one = Series::new(one).median_s.context("no runs")?;
    let sixteen = Series::new(sixteen).median_s.context("no runs")?;
    let most = copies_sent.iter().copied().max().unwrap_or(0);
    let mut section = Section::new(TITLE);
    section.value(format!("baseline: one download of {mib} MiB"), one, "s");
    section.value(
        format!("{PROCESSES} downloads started together"),
        sixteen,
        "s",
    );
    section.value("whole copies sent per round (most)", most as f64, "");
    section.target("16 at once / one download", sixteen / one, SIXTEEN_VS_ONE);
    section.target("whole copies sent per round", most as f64, 1.0);
    Ok(section)
}

/// `dir/big-<mib>.bin`, seeded noise, made once and reused.
fn seeded_file(dir: &Path, mib: usize) -> Result<PathBuf> {
    let path = dir.join(format!("big-{mib}.bin"));
    let bytes = (mib as u64) << 20;
    if fs::metadata(&path).is_ok_and(|meta| meta.len() == bytes) {
        return Ok(path);
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let partial = dir.join(format!("big-{mib}.bin.partial"));
    let mut file = fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut prng = SplitMix64::new(0x0f0a_0f0a);
    let mut chunk = vec![0_u8; 1 << 20];
    for _ in 0..mib {
        prng.fill(&mut chunk);
        file.write_all(&chunk)?;
    }
    drop(file);
    fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
