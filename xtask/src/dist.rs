//! `cargo xtask dist`: the `resource` binary as it is shipped to workers. On Linux with glibc it is
//! linked statically as a position-independent executable (static-pie): it runs on any Linux of
//! its architecture whatever the glibc there, keeps address-space randomisation, and starts
//! without the dynamic loader mapping libc, libm and libgcc_s and resolving their symbols, which
//! on a worker is paid by every download (about 1.4 ms of CPU on the machine of the latency
//! benchmark). Only the binary's own link takes `+crt-static`: given to every
//! crate it would break the proc-macros and the Python extension, which must stay dynamic.
//!
//! Where the host's glibc is 2.36 or later, the link also packs the relative relocations
//! (`-z pack-relative-relocs`, DT_RELR): a static-pie applies all of them itself at start, and
//! packed they take 10 KiB instead of 900 KiB of table to read, which saved about 0.25 ms of CPU
//! and 30 page faults per download on the latency benchmark's machine. The code that applies them
//! is linked in from the host's static glibc, which knows DT_RELR from 2.36 on; with an older one
//! the flag is left out, as a binary with packed relocations would not start.
//!
//! The test run builds the same way in the dev profile and checks the result: static and
//! position-independent, and able to download by host name (glibc's built-in `files` and `dns`
//! lookups, the ones a static binary has) from a web server on 127.0.0.1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail, ensure};
use resource_store::testing::{HttpFileServer, noise};

use crate::bench::contenders::CreatedResource;
use crate::project::Project;
use crate::run::{header, output_checked, run_checked};

/// Which cargo profile to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Shipped and benchmarked.
    Release,
    /// For the test run's check, reusing the test build's dependencies.
    Dev,
}

/// Whether this host's binaries are linked static-pie.
const STATIC_PIE: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// `cargo xtask dist`: builds the release binary into `target/dist/resource`, checks it as the
/// test run does, and prints its path.
pub(crate) fn run(project: &Project) -> Result<ExitCode> {
    header("cargo rustc --release -p resource-cli --bin resource (static-pie)");
    let binary = build(project, Profile::Release)?;
    check_built(project, &binary)?;
    println!("{}", binary.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds `resource` in `profile` as it is shipped; returns its path (`target/dist/resource` for
/// release, the dev profile's own for dev).
pub(crate) fn build(project: &Project, profile: Profile) -> Result<PathBuf> {
    let mut cargo = project.cargo();
    if STATIC_PIE {
        cargo.args(["rustc", "-p", "resource-cli", "--bin", "resource"]);
    } else {
        cargo.args(["build", "-p", "resource-cli", "--bin", "resource"]);
    }
    if profile == Profile::Release {
        cargo.arg("--release");
    }
    if STATIC_PIE {
        cargo.args(["--", "-C", "target-feature=+crt-static"]);
        if glibc_applies_packed_relocations()? {
            cargo.args(["-C", "link-arg=-Wl,-z,pack-relative-relocs"]);
        }
    }
    run_checked(&mut cargo)?;
    let built = project
        .target_dir()
        .join(match profile {
            Profile::Release => "release",
            Profile::Dev => "debug",
        })
        .join("resource");
    ensure!(built.is_file(), "the build made no {}", built.display());
    if profile == Profile::Dev {
        return Ok(built);
    }
    // A copy of its own, which a later plain `cargo build` does not relink dynamically.
    let dist = project.target_dir().join("dist");
    fs::create_dir_all(&dist).with_context(|| format!("cannot create {}", dist.display()))?;
    let shipped = dist.join("resource");
    let partial = dist.join(".resource.partial");
    fs::copy(&built, &partial)
        .with_context(|| format!("cannot copy {} to {}", built.display(), partial.display()))?;
    fs::rename(&partial, &shipped).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial.display(),
            shipped.display()
        )
    })?;
    Ok(shipped)
}

/// Whether the host's glibc, whose static library a static-pie links in, applies packed relative
/// relocations (DT_RELR) at start: from glibc 2.36 on.
fn glibc_applies_packed_relocations() -> Result<bool> {
    let printed = output_checked(Command::new("getconf").arg("GNU_LIBC_VERSION"))
        .context("asking getconf for the glibc version")?;
    glibc_at_least(&printed, (2, 36))
        .with_context(|| format!("getconf GNU_LIBC_VERSION printed {printed:?}"))
}

/// Whether `printed`, as `getconf GNU_LIBC_VERSION` prints it (`glibc 2.36`), is at least
/// `(major, minor)`; `None` when it is not in that form.
fn glibc_at_least(printed: &str, (major, minor): (u32, u32)) -> Option<bool> {
    let version = printed.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let found_major: u32 = parts.next()?.parse().ok()?;
    let found_minor: u32 = parts.next()?.parse().ok()?;
    Some((found_major, found_minor) >= (major, minor))
}

/// Fails unless `binary` is an ELF executable that is position-independent (`ET_DYN`, so that it
/// is loaded at a random address) and names no program interpreter (no dynamic loader: static).
pub(crate) fn check_static_pie(binary: &Path) -> Result<()> {
    const ET_DYN: u16 = 3;
    const PT_INTERP: u32 = 3;
    let bytes = fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    // A 64-bit little-endian ELF file: the only kind this host builds.
    ensure!(
        bytes.get(..6) == Some(b"\x7fELF\x02\x01".as_slice()),
        "{} is not a 64-bit little-endian ELF file",
        binary.display()
    );
    let malformed = || anyhow::anyhow!("{}: malformed ELF header", binary.display());
    let kind = u16_at(0x10).ok_or_else(malformed)?;
    ensure!(
        kind == ET_DYN,
        "{} is not position-independent (ELF type {kind}, not ET_DYN): it would lose address-space randomisation",
        binary.display()
    );
    let table = usize::try_from(u64_at(0x20).ok_or_else(malformed)?)?;
    let entry_len = usize::from(u16_at(0x36).ok_or_else(malformed)?);
    let entries = usize::from(u16_at(0x38).ok_or_else(malformed)?);
    for index in 0..entries {
        let kind = u32_at(table + index * entry_len).ok_or_else(malformed)?;
        if kind == PT_INTERP {
            bail!(
                "{} names a program interpreter: it is linked dynamically, not static-pie",
                binary.display()
            );
        }
    }
    Ok(())
}

/// The test run's check of the shipped build, made in the dev profile: returns the checks passed.
pub(crate) fn check(project: &Project) -> Result<u64> {
    let binary = build(project, Profile::Dev)?;
    check_built(project, &binary)
}

/// Checks a shipped build: static-pie, and a download by host name; returns the checks passed.
fn check_built(project: &Project, binary: &Path) -> Result<u64> {
    if !STATIC_PIE {
        // Elsewhere the shipped binary is the ordinary build, which the cargo tests ran.
        return Ok(0);
    }
    check_static_pie(binary)?;
    println!("{}: static-pie", binary.display());
    download_by_host_name(
        binary,
        &project.target_dir().join("xtask").join("dist-check"),
    )?;
    println!(
        "{}: a download from http://localhost took 1 request",
        binary.display()
    );
    Ok(2)
}

/// Creates a small directory resource with `binary`, serves its store over HTTP on 127.0.0.1 and
/// downloads it through `http://localhost:PORT/…`: the host name is resolved by the static
/// binary's own glibc. The download must take one request and install the same bytes.
fn download_by_host_name(binary: &Path, scratch: &Path) -> Result<()> {
    if scratch.exists() {
        fs::remove_dir_all(scratch)
            .with_context(|| format!("cannot remove {}", scratch.display()))?;
    }
    let tree = scratch.join("leader").join("small");
    fs::create_dir_all(tree.join("pkg"))
        .with_context(|| format!("cannot create {}", tree.display()))?;
    let content = noise(64 << 10, 12);
    fs::write(tree.join("pkg").join("data.bin"), &content)?;
    let store = scratch.join("store");
    let created = output_checked(
        Command::new(binary)
            .arg("create")
            .arg(&tree)
            .arg("--store")
            .arg(&store)
            .args(["--json", "--kind", "dir"]),
    )?;
    let created = CreatedResource::parse(&created)?;
    let server = HttpFileServer::serve(&store.join("shared"))?;
    let by_name = server
        .url(&created.path_hash)
        .replace("127.0.0.1", "localhost");
    let root = scratch.join("worker");
    fs::create_dir_all(&root)?;
    let installed = output_checked(
        Command::new(binary)
            .env_clear()
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("JTRES_ROOT", &root)
            .env(
                &created.env_name,
                created.env_value.replace(&created.url, &by_name),
            )
            .arg("download")
            .arg(&tree)
            .arg("--root")
            .arg(&root),
    )?;
    let installed = PathBuf::from(installed.trim());
    let got = fs::read(installed.join("pkg").join("data.bin")).with_context(|| {
        format!(
            "the download installed no pkg/data.bin in {}",
            installed.display()
        )
    })?;
    ensure!(
        got == content,
        "the download from {by_name} installed other bytes"
    );
    let requests = server.counts(&created.path_hash).requests;
    ensure!(
        requests == 1,
        "a 64 KiB download from {by_name} took {requests} requests, not 1"
    );
    fs::remove_dir_all(scratch).with_context(|| format!("cannot remove {}", scratch.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_glibc_version_is_read_as_getconf_prints_it() {
        for (printed, expected) in [
            ("glibc 2.36\n", Some(true)),
            ("glibc 2.41", Some(true)),
            ("glibc 3.0", Some(true)),
            ("glibc 2.35", Some(false)),
            ("glibc 2.4", Some(false)),
            ("glibc 2", None),
            ("musl 1.2.4", None),
            ("", None),
        ] {
            assert_eq!(glibc_at_least(printed, (2, 36)), expected, "{printed:?}");
        }
    }

    #[test]
    fn a_dynamically_linked_binary_is_not_taken_for_static_pie() {
        // The test binary itself is linked the ordinary way.
        let exe = std::env::current_exe().unwrap_or_default();
        let outcome = check_static_pie(&exe);
        if STATIC_PIE {
            let error = outcome
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(error.contains("program interpreter"), "{error}");
        }
        let not_elf = std::env::temp_dir().join(format!("not-elf-{}", std::process::id()));
        let written = fs::write(&not_elf, b"#!/bin/sh\n");
        assert!(written.is_ok());
        let error = check_static_pie(&not_elf)
            .err()
            .map(|error| error.to_string());
        let _ = fs::remove_file(&not_elf);
        assert!(error.is_some_and(|error| error.contains("not a 64-bit")));
    }
}
