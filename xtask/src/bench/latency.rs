//! `cargo xtask bench --only latency`: downloads of directory resources from 64 KiB to 512 MiB
//! through a delay proxy ([`DelayProxy`]: each chunk delivered 10 ms after it arrived, in both
//! directions, so a 20 ms round trip) in front of the test HTTP file server, with and without a
//! per-connection bandwidth cap of 100 MB/s (roughly one S3 connection).
//!
//! Contenders, interleaved round by round: ours as a worker runs it (`resource download`, the
//! whole process); Toil 9's `Resource.download()` timed inside one Python process (its start and
//! imports not charged to it); `curl` of the same URL into `md5sum` (one request, nothing
//! unpacked); and, for the sizes above 4 MiB, `curl` of 4 ranges into `/dev/null`, what 4
//! connections carry through the proxy on this machine with nothing hashed or written (the ideal
//! assumes a machine with nothing else to do), twice: all 4 asked at once, and the first alone
//! with the other 3 asked once its answer comes, as a worker must (it learns the size from the
//! first answer). The proxy's request log gives the requests per download.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use resource_store::testing::{DelayProxy, HttpFileServer, ProxyOptions};
use serde_json::Value;

use super::contenders::{CreatedResource, Sample};
use super::prng::SplitMix64;
use super::report::median;
use super::reset_dir;
use super::sections::Section;
use crate::run::measure;

/// The delay each way: a 20 ms round trip.
pub(super) const DELAY: Duration = Duration::from_millis(10);
/// The per-connection cap of the second network.
const CAP_BYTES_PER_SECOND: u64 = 100_000_000;
/// Connections the ideal of a capped download counts on (ours fetches 4 ranges at once).
const IDEAL_CONNECTIONS: f64 = 4.0;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// What the section needs from the bench run.
pub(super) struct Setup<'a> {
    /// Ours, or why it is not available.
    pub ours: &'a Result<PathBuf, String>,
    /// The test venv's Python, with Toil.
    pub python: PathBuf,
    /// `xtask/bench/toil_driver.py`.
    pub toil_driver: PathBuf,
    /// Where inputs are cached.
    pub bench_root: &'a Path,
    /// Scratch space.
    pub work: &'a Path,
    /// Fewer and smaller sizes.
    pub quick: bool,
    /// Measured rounds after a warm-up.
    pub runs: usize,
}

/// The sizes measured: content bytes of the one data file in each directory resource.
fn sizes(quick: bool) -> Vec<u64> {
    if quick {
        vec![64 * KIB, 4 * MIB, 64 * MIB]
    } else {
        vec![64 * KIB, 4 * MIB, 64 * MIB, 512 * MIB]
    }
}

fn size_label(bytes: u64) -> String {
    if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / KIB)
    }
}

/// Runs both networks; failures become "not available".
pub(super) fn run(setup: &Setup<'_>) -> Vec<Section> {
    let networks = [
        (
            "latency: download over a 20 ms round trip (HTTP through a delay proxy)",
            0,
        ),
        (
            "latency: download over a 20 ms round trip, 100 MB/s per connection",
            CAP_BYTES_PER_SECOND,
        ),
    ];
    let binary = match setup.ours {
        Ok(binary) => binary,
        Err(reason) => {
            return networks
                .iter()
                .map(|(title, _)| Section::unavailable(title, &anyhow!("ours {reason}")))
                .collect();
        }
    };
    networks
        .iter()
        .map(|(title, cap)| {
            measure_network(setup, binary, *cap, title)
                .unwrap_or_else(|error| Section::unavailable(title, &error))
        })
        .collect()
}

/// One created resource, served through the proxy.
struct Served {
    size: u64,
    input: PathBuf,
    path_hash: String,
    env_name: String,
    env_value: String,
    url: String,
    /// The stored object's length.
    stored_len: u64,
}

/// The test HTTP file server on `dir` behind a delay proxy of [`DELAY`] each way, capped at
/// `cap` bytes per second per connection (0: uncapped). The server must outlive the proxy's use.
pub(super) fn serve_delayed(dir: &Path, cap: u64) -> Result<(HttpFileServer, DelayProxy)> {
    let server = HttpFileServer::serve(dir).context("starting the HTTP server")?;
    let upstream = server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .context("the HTTP server's address")?;
    let proxy = DelayProxy::start(
        upstream,
        ProxyOptions {
            delay: DELAY,
            bytes_per_second: cap,
        },
    )
    .context("starting the delay proxy")?;
    Ok((server, proxy))
}

fn measure_network(
    setup: &Setup<'_>,
    binary: &Path,
    cap: u64,
    title: &'static str,
) -> Result<Section> {
    let work = setup.work.join("latency");
    reset_dir(&work)?;
    let store = work.join("store");
    let (_server, proxy) = serve_delayed(&store.join("shared"), cap)?;
    let mut section = Section::new(title);
    for size in sizes(setup.quick) {
        let input = seeded_tree(&setup.bench_root.join("latency"), size)?;
        let created = measure(
            Command::new(binary)
                .arg("create")
                .arg(&input)
                .arg("--store")
                .arg(&store)
                .args(["--json", "--kind", "dir"]),
        )?;
        let created = CreatedResource::parse(&created.stdout)?;
        let url = format!("{}/{}", proxy.endpoint(), created.path_hash);
        let object = store.join("shared").join(&created.path_hash);
        let stored_len = fs::metadata(&object)
            .with_context(|| format!("cannot read {}", object.display()))?
            .len();
        let served = Served {
            stored_len,
            size,
            input,
            env_value: created.env_value.replace(&created.url, &url),
            env_name: created.env_name,
            path_hash: created.path_hash,
            url,
        };
        // Large downloads take seconds each: fewer rounds.
        let runs = if size >= 64 * MIB {
            setup.runs.min(3)
        } else {
            setup.runs
        };
        measure_size(
            setup,
            binary,
            &proxy,
            &served,
            cap,
            runs,
            &work,
            &mut section,
        )?;
    }
    reset_dir(&work)?;
    Ok(section)
}

/// The medians of one contender at one size.
#[derive(Default)]
struct Samples {
    seconds: Vec<f64>,
    requests: Vec<f64>,
}

impl Samples {
    fn medians(&self) -> Result<(f64, f64)> {
        Ok((
            median(self.seconds.clone()).context("no runs")?,
            median(self.requests.clone()).context("no runs")?,
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn measure_size(
    setup: &Setup<'_>,
    binary: &Path,
    proxy: &DelayProxy,
    served: &Served,
    cap: u64,
    runs: usize,
    work: &Path,
    section: &mut Section,
) -> Result<()> {
    let label = size_label(served.size);
    print!("{label}:");
    std::io::stdout().flush()?;
    let (mut ours, mut toil, mut curl) =
        (Samples::default(), Samples::default(), Samples::default());
    let (mut curl_ranges, mut curl_ranges_after_first) = (Samples::default(), Samples::default());
    let large = served.size > 4 * MIB;
    let requests_now = || -> Result<usize> {
        let object = format!("/{}", served.path_hash);
        Ok(proxy
            .requests()?
            .iter()
            .filter(|request| request.path == object)
            .count())
    };
    for round in 0..=runs {
        print!("{}", if round == 0 { " warm-up" } else { " run" });
        std::io::stdout().flush()?;
        let root = work.join("root");

        reset_dir(&root)?;
        let before = requests_now()?;
        let measured = measure(
            Command::new(binary)
                .env_clear()
                .env("JTRES_ROOT", &root)
                .env(&served.env_name, &served.env_value)
                .arg("download")
                .arg(&served.input)
                .arg("--root")
                .arg(&root),
        )?;
        let ours_requests = requests_now()? - before;

        reset_dir(&root)?;
        let before = requests_now()?;
        let measured_toil = measure(
            Command::new(&setup.python)
                .env_clear()
                .env("JTRES_ROOT", &root)
                .env(&served.env_name, &served.env_value)
                .arg(&setup.toil_driver)
                .arg("download")
                .arg(&served.input),
        )
        .context("Toil's Resource.download()")?;
        let toil_requests = requests_now()? - before;
        let json: Value = serde_json::from_str(measured_toil.stdout.trim())
            .with_context(|| format!("toil driver printed {:?}", measured_toil.stdout))?;
        let toil_seconds = json
            .get("seconds")
            .and_then(Value::as_f64)
            .context("toil driver output lacks seconds")?;

        let before = requests_now()?;
        let measured_curl = measure(
            Command::new("bash")
                .args(["-o", "pipefail", "-c"])
                .arg(format!("curl -sf '{}' | md5sum", served.url)),
        )
        .context("curl | md5sum")?;
        let curl_requests = requests_now()? - before;
        let measure_ranges = |after_first: bool| -> Result<Option<(f64, usize)>> {
            if !large {
                return Ok(None);
            }
            let before = requests_now()?;
            let measured = measure(Command::new("bash").args(["-o", "pipefail", "-c"]).arg(
                parallel_curl_script(&served.url, served.stored_len, after_first),
            ))
            .context("curl of 4 ranges")?;
            Ok(Some((
                measured.wall.as_secs_f64(),
                requests_now()? - before,
            )))
        };
        let measured_curl_ranges = measure_ranges(false)?;
        let measured_curl_ranges_after_first = measure_ranges(true)?;
        if round > 0 {
            for (samples, measured) in [
                (&mut curl_ranges, measured_curl_ranges),
                (
                    &mut curl_ranges_after_first,
                    measured_curl_ranges_after_first,
                ),
            ] {
                if let Some((seconds, requests)) = measured {
                    samples.seconds.push(seconds);
                    samples.requests.push(requests as f64);
                }
            }
            ours.seconds.push(Sample::of(&measured, None).wall_s);
            ours.requests.push(ours_requests as f64);
            toil.seconds.push(toil_seconds);
            toil.requests.push(toil_requests as f64);
            curl.seconds.push(measured_curl.wall.as_secs_f64());
            curl.requests.push(curl_requests as f64);
        }
    }
    println!();
    let (ours_s, ours_requests) = ours.medians()?;
    let (toil_s, toil_requests) = toil.medians()?;
    let (curl_s, curl_requests) = curl.medians()?;
    section.value(format!("{label}: ours (whole process)"), ours_s, "s");
    section.value(
        format!("{label}: Toil Resource.download() (in process)"),
        toil_s,
        "s",
    );
    section.value(format!("{label}: curl | md5sum"), curl_s, "s");
    let curl_ranges_s = if large {
        let (seconds, requests) = curl_ranges.medians()?;
        section.value(
            format!("{label}: curl of 4 ranges at once (nothing hashed or written)"),
            seconds,
            "s",
        );
        section.value(format!("{label}: requests, curl of 4 ranges"), requests, "");
        let (after_first_s, _) = curl_ranges_after_first.medians()?;
        section.value(
            format!("{label}: curl of 4 ranges, 3 asked once the first answers"),
            after_first_s,
            "s",
        );
        Some((seconds, after_first_s))
    } else {
        None
    };
    let ours_rss = ours_peak_rss_mib(binary, served, &work.join("root"))?;
    section.target(format!("{label}: peak RSS, ours (MiB)"), ours_rss, 64.0);
    section.value(format!("{label}: requests, ours"), ours_requests, "");
    section.value(format!("{label}: requests, Toil"), toil_requests, "");
    section.value(format!("{label}: requests, curl"), curl_requests, "");
    if served.size <= 4 * MIB {
        section.target(format!("{label}: requests (ours)"), ours_requests, 1.0);
        section.target(format!("{label}: ours / Toil"), ours_s / toil_s, 1.0);
        section.target(format!("{label}: ours / curl"), ours_s / curl_s, 1.2);
    } else if cap > 0 {
        let ideal =
            served.size as f64 / (IDEAL_CONNECTIONS * cap as f64) + 2.0 * DELAY.as_secs_f64();
        section.value(
            format!("{label}: ideal (4 connections + 1 round trip)"),
            ideal,
            "s",
        );
        section.target(format!("{label}: ours / Toil"), ours_s / toil_s, 0.5);
        section.target(format!("{label}: ours / ideal"), ours_s / ideal, 1.2);
        if let Some((curl_ranges_s, after_first_s)) = curl_ranges_s {
            section.value(
                format!("{label}: 4 curl ranges / ideal"),
                curl_ranges_s / ideal,
                "",
            );
            section.value(
                format!("{label}: ours / 4 curl ranges"),
                ours_s / curl_ranges_s,
                "",
            );
            section.value(
                format!("{label}: 4 curl ranges, 3 after the first answer / ideal"),
                after_first_s / ideal,
                "",
            );
            section.value(
                format!("{label}: ours / 4 curl ranges, 3 after the first answer"),
                ours_s / after_first_s,
                "",
            );
        }
    } else {
        section.value(format!("{label}: ours / Toil"), ours_s / toil_s, "");
        section.value(format!("{label}: ours / curl"), ours_s / curl_s, "");
    }
    Ok(())
}

/// A shell script that fetches the `len` bytes at `url` as 4 ranges, each into `/dev/null`: the
/// most that 4 connections carry through the proxy on this machine, with nothing hashed, unpacked
/// or written, beside which ours and the ideal can be read. With `after_first`, the first range
/// is asked for alone and the other 3 once its first byte comes: the round trip a worker waits
/// before it knows the size, which Deliver 1 of the latency issue leaves in every download.
fn parallel_curl_script(url: &str, len: u64, after_first: bool) -> String {
    let quarter = len.div_ceil(IDEAL_CONNECTIONS as u64).max(1);
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < len {
        let end = (start + quarter).min(len) - 1;
        ranges.push(format!("-r {start}-{end}"));
        start = end + 1;
    }
    let fetch_rest = |ranges: &[String]| {
        let mut script = String::from("pids=()\n");
        for range in ranges {
            script.push_str(&format!(
                "curl -sf {range} -o /dev/null '{url}' & pids+=($!)\n"
            ));
        }
        script
    };
    let wait_all = "for pid in \"${pids[@]}\"; do wait \"$pid\" || exit 1; done\n";
    match ranges.split_first() {
        Some((first, rest)) if after_first => format!(
            "curl -sfN {first} '{url}' | {{\n\
             head -c 1 > /dev/null || exit 1\n\
             {}cat > /dev/null\n\
             {wait_all}}}\n",
            fetch_rest(rest)
        ),
        _ => format!("{}{wait_all}", fetch_rest(&ranges)),
    }
}

/// Ours' peak RSS for one more, untimed download, taken by `/usr/bin/time`.
///
/// A child's `ru_maxrss` starts from its parent's resident size at the fork, and this process
/// holds the proxy's queued bytes (hundreds of MiB while a large object is delayed), so the RSS
/// `wait4` gives for a child of this process is this process's, not ours. `time` is a small
/// process, and its child's peak is the child's own.
fn ours_peak_rss_mib(binary: &Path, served: &Served, root: &Path) -> Result<f64> {
    reset_dir(root)?;
    let report = root.with_extension("rss");
    measure(
        Command::new("/usr/bin/time")
            .env_clear()
            .env("JTRES_ROOT", root)
            .env(&served.env_name, &served.env_value)
            .args(["--format", "%M", "--output"])
            .arg(&report)
            .arg(binary)
            .arg("download")
            .arg(&served.input)
            .arg("--root")
            .arg(root),
    )
    .context("ours under /usr/bin/time")?;
    let printed =
        fs::read_to_string(&report).with_context(|| format!("cannot read {}", report.display()))?;
    let kib: f64 = printed
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("/usr/bin/time printed {printed:?}"))?;
    Ok(kib / 1024.0)
}

/// `dir/tree-<bytes>/`: a directory resource with a small script and `bytes` of seeded noise,
/// made once and reused.
pub(super) fn seeded_tree(dir: &Path, bytes: u64) -> Result<PathBuf> {
    let tree = dir.join(format!("tree-{bytes}"));
    let data = tree.join("data.bin");
    if fs::metadata(&data).is_ok_and(|meta| meta.len() == bytes) {
        return Ok(tree);
    }
    if tree.exists() {
        fs::remove_dir_all(&tree).with_context(|| format!("cannot remove {}", tree.display()))?;
    }
    fs::create_dir_all(&tree).with_context(|| format!("cannot create {}", tree.display()))?;
    fs::write(tree.join("job.py"), "def main():\n    return 1\n")?;
    let partial = tree.join("data.bin.partial");
    let mut file = fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut prng = SplitMix64::new(0x1a7e_0c0d ^ bytes);
    let mut chunk = vec![0_u8; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        let take = usize::try_from(left.min(chunk.len() as u64))?;
        prng.fill(&mut chunk[..take]);
        file.write_all(&chunk[..take])?;
        left -= take as u64;
    }
    drop(file);
    fs::rename(&partial, &data).with_context(|| format!("cannot write {}", data.display()))?;
    if !data.is_file() {
        bail!("{} was not made", data.display());
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both curl scripts ask for the same 4 ranges, which cover the object exactly, and are valid
    /// bash; the one after the first answer starts its other 3 inside the first one's pipe.
    #[test]
    fn the_curl_range_scripts_cover_the_object_in_4_ranges() -> Result<()> {
        let len = 10_000_003;
        for after_first in [false, true] {
            let script = parallel_curl_script("http://127.0.0.1:1/x", len, after_first);
            let mut next = 0;
            let ranges: Vec<&str> = script
                .split("-r ")
                .skip(1)
                .filter_map(|rest| rest.split_whitespace().next())
                .collect();
            assert_eq!(ranges.len(), 4, "{script}");
            for range in ranges {
                let (start, end) = range
                    .split_once('-')
                    .with_context(|| format!("{range:?} is not START-END"))?;
                assert_eq!(start.parse::<u64>()?, next, "{script}");
                next = end.parse::<u64>()? + 1;
            }
            assert_eq!(next, len, "{script}");
            assert_eq!(script.contains("| {"), after_first, "{script}");
            let checked = Command::new("bash").args(["-n", "-c", &script]).status()?;
            assert!(checked.success(), "bash -n refused:\n{script}");
        }
        Ok(())
    }
}
