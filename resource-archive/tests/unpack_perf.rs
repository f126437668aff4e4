//! Throughput of the streaming reader against MD5 alone, on a 1 GiB archive of 20,000 files.
//!
//! Ignored by default (it writes 2 GiB). Run it optimised, on tmpfs:
//! `cargo test --release -p resource-archive --test unpack_perf -- --ignored --nocapture`
//! (`UNPACK_PERF_DIR` chooses the directory; default `/dev/shm` when it exists).

// The test reports what it measured.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use resource_archive::{UnpackOptions, unpack_file};
use resource_core::hash::HashingReader;

type TestResult = Result<(), Box<dyn Error>>;

const FILES: usize = 20_000;
const TOTAL: usize = 1 << 30;

/// Writes a stored archive of `FILES` files of pseudo-random bytes, `TOTAL` bytes of content.
fn write_archive(path: &std::path::Path) -> TestResult {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut central = Vec::new();
    let mut offset = 0u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut content = vec![0u8; TOTAL / FILES + 1024];
    for i in 0..FILES {
        // Sizes vary around the mean.
        let len = TOTAL / FILES - 512 + (i % 1024);
        for chunk in content[..len].chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let bytes = seed.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let data = &content[..len];
        let name = format!("d{:03}/f{i:05}.bin", i % 200);
        let crc = crc32fast::hash(data);
        let mut header = Vec::new();
        header.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        header.extend_from_slice(&20u16.to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&crc.to_le_bytes());
        header.extend_from_slice(&(len as u32).to_le_bytes());
        header.extend_from_slice(&(len as u32).to_le_bytes());
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes());
        header.extend_from_slice(name.as_bytes());
        out.write_all(&header)?;
        out.write_all(data)?;

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&((3u16 << 8) | 30).to_le_bytes());
        central.extend_from_slice(&header[4..30]);
        central.extend_from_slice(&[0; 6]);
        central.extend_from_slice(&(0o100_644u32 << 16).to_le_bytes());
        central.extend_from_slice(&(offset as u32).to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        offset += (header.len() + len) as u64;
    }
    out.write_all(&central)?;
    let mut end = Vec::new();
    end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    end.extend_from_slice(&[0; 4]);
    end.extend_from_slice(&(FILES as u16).to_le_bytes());
    end.extend_from_slice(&(FILES as u16).to_le_bytes());
    end.extend_from_slice(&(central.len() as u32).to_le_bytes());
    end.extend_from_slice(&(offset as u32).to_le_bytes());
    end.extend_from_slice(&0u16.to_le_bytes());
    out.write_all(&end)?;
    out.flush()?;
    Ok(())
}

/// CPU seconds (user + system) from a `/proc/.../stat` file, assuming 100 ticks per second.
fn cpu_seconds(stat: &str) -> Result<f64, Box<dyn Error>> {
    let text = std::fs::read_to_string(stat)?;
    let rest = text.rsplit_once(')').ok_or("no command name")?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next().ok_or("no utime")?.parse()?;
    let system: f64 = fields.next().ok_or("no stime")?.parse()?;
    Ok((user + system) / 100.0)
}

#[test]
#[ignore = "writes 2 GiB; run with --release --ignored"]
fn unpacking_runs_near_md5_speed() -> TestResult {
    let base = std::env::var_os("UNPACK_PERF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    let root = tempfile::tempdir_in(&base)?;
    let archive = root.path().join("big.zip");
    write_archive(&archive)?;
    let size = std::fs::metadata(&archive)?.len();
    let mib = size as f64 / (1 << 20) as f64;

    let mut best_md5 = f64::MAX;
    let mut best_unpack = f64::MAX;
    for round in 0..3 {
        let started = Instant::now();
        let mut reader = HashingReader::new(std::fs::File::open(&archive)?);
        let mut buf = vec![0; 1 << 20];
        let cpu0 = cpu_seconds("/proc/thread-self/stat")?;
        while reader.read(&mut buf)? > 0 {}
        let (_, md5_hash) = reader.finish()?;
        best_md5 = best_md5.min(started.elapsed().as_secs_f64());
        println!(
            "round {round}: MD5 alone {:.2} s wall, {:.2} s CPU",
            started.elapsed().as_secs_f64(),
            cpu_seconds("/proc/thread-self/stat")? - cpu0
        );

        let dest = root.path().join(format!("dest{round}"));
        std::fs::create_dir(&dest)?;
        let (process0, thread0) = (
            cpu_seconds("/proc/self/stat")?,
            cpu_seconds("/proc/thread-self/stat")?,
        );
        let started = Instant::now();
        let (summary, hash) = unpack_file(&archive, &dest, &UnpackOptions::default())?;
        let wall = started.elapsed().as_secs_f64();
        best_unpack = best_unpack.min(wall);
        let reader_cpu = cpu_seconds("/proc/thread-self/stat")? - thread0;
        let total_cpu = cpu_seconds("/proc/self/stat")? - process0;
        println!(
            "round {round}: unpack {wall:.2} s wall; CPU: reading and hashing {reader_cpu:.2} s, \
             writing {:.2} s",
            total_cpu - reader_cpu
        );
        assert_eq!(hash, md5_hash);
        assert_eq!(summary.files, FILES as u64);
        std::fs::remove_dir_all(&dest)?;
    }
    println!(
        "{mib:.0} MiB, {FILES} files: MD5 alone {best_md5:.2} s ({:.0} MiB/s); \
         unpack {best_unpack:.2} s ({:.0} MiB/s); ratio {:.2}",
        mib / best_md5,
        mib / best_unpack,
        best_unpack / best_md5
    );
    Ok(())
}
