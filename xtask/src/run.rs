//! Running child processes: step headers, checked runs, and measured runs (wall time and the
//! child's own peak RSS from the kernel).

use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Prints a step header so a long log shows where each step starts.
pub(crate) fn header(title: &str) {
    println!("\n==> {title}");
}

/// A command line as a person would type it (for headers and error messages).
///
/// The cargo that runs xtask is named by its full path; it is shown as plain `cargo`.
pub(crate) fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program());
    let mut text = if program.file_name().is_some_and(|name| name == "cargo") {
        "cargo".to_owned()
    } else {
        program.to_string_lossy().into_owned()
    };
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs a command with inherited stdio; fails unless it exits successfully.
pub(crate) fn run_checked(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start `{}`", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

/// Runs a command and returns its standard output; fails (showing its standard error) unless
/// it exits successfully.
pub(crate) fn output_checked(command: &mut Command) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", describe(command)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(command),
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr), 20)
        );
    }
    String::from_utf8(output.stdout)
        .with_context(|| format!("`{}` printed invalid UTF-8", describe(command)))
}

/// The last `lines` lines of `text`, trimmed.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What one measured run of a child process cost.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    /// Wall time from spawn to reaping the child.
    pub wall: Duration,
    /// The child's peak resident set size in KiB (`ru_maxrss` from `wait4`).
    pub peak_rss_kib: u64,
    /// CPU time the child used, user plus system (`ru_utime + ru_stime` from `wait4`).
    pub cpu: Duration,
    /// Everything the child printed on standard output.
    pub stdout: String,
}

/// Runs a command to completion with captured output and measures its wall time and its own
/// peak RSS. Fails, with the tail of its standard error, unless it exits successfully.
pub(crate) fn measure(command: &mut Command) -> Result<Measured> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start `{}`", describe(command)))?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let waited = wait4(child.id());
    let wall = start.elapsed();
    let stdout = join_output(stdout)?;
    let stderr = join_output(stderr)?;
    let (status, peak_rss_kib, cpu) =
        waited.with_context(|| format!("waiting for `{}`", describe(command)))?;
    if !status.success() {
        bail!(
            "`{}` failed ({status}): {}",
            describe(command),
            tail(&stderr, 20)
        );
    }
    Ok(Measured {
        wall,
        peak_rss_kib,
        cpu,
        stdout,
    })
}

/// Reads a pipe to its end on a separate thread, so a chatty child never blocks.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<io::Result<String>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}

fn join_output(handle: Option<thread::JoinHandle<io::Result<String>>>) -> Result<String> {
    match handle {
        None => Ok(String::new()),
        Some(handle) => match handle.join() {
            Ok(read) => Ok(read.context("reading a child's output")?),
            Err(_) => bail!("the thread reading a child's output panicked"),
        },
    }
}

/// Reaps child `pid` and returns its exit status, its own peak RSS in KiB and its CPU time.
///
/// `std::process::Child::wait` discards the child's resource usage, and
/// `getrusage(RUSAGE_CHILDREN)` reports the maximum over all children ever reaped, so one
/// `wait4` call is the only way to get this child's peak RSS from the kernel without an extra
/// tool such as `/usr/bin/time`. This is the only unsafe code in the workspace's tooling.
#[allow(unsafe_code)]
fn wait4(pid: u32) -> Result<(ExitStatus, u64, Duration)> {
    let pid = libc::pid_t::try_from(pid).context("child pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers refer to live, writable locals of the right types; `pid` is our
        // own unreaped child, so no other process's status can be consumed.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error).context("wait4");
        }
    }
    let peak_rss_kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
    Ok((ExitStatus::from_raw(status), peak_rss_kib, cpu))
}

fn timeval(time: libc::timeval) -> Duration {
    let seconds = u64::try_from(time.tv_sec).unwrap_or(0);
    let micros = u64::try_from(time.tv_usec).unwrap_or(0);
    Duration::from_secs(seconds) + Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_reports_output_and_peak_rss() -> Result<()> {
        let measured = measure(Command::new("sh").args(["-c", "echo hello"]))?;
        assert_eq!(measured.stdout, "hello\n");
        assert!(measured.peak_rss_kib > 0);
        Ok(())
    }

    #[test]
    fn measure_fails_on_non_zero_exit_with_stderr() {
        let result = measure(Command::new("sh").args(["-c", "echo broken >&2; exit 3"]));
        let message = result.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(message.contains("broken"), "{message}");
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
