//! Real storage servers the tests run against, started by `cargo xtask test` on free ports of
//! 127.0.0.1 and stopped when the run ends, also when it fails.
//!
//! Adding a server is one struct implementing [`Server`] plus one line in [`all`]: how to make
//! sure it is installed, the command that starts it on a given port, when it is ready, what to
//! set up on it once it is, and which variables tell the tests where it is. A server that cannot
//! be installed, started or set up fails the run: no test is ever skipped for want of a server.

mod azurite;
mod fake_gcs;
mod moto;
mod s3s;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::project::Project;
use crate::run::{describe, tail};
use crate::tools::Venv;

pub(crate) use azurite::Azurite;
pub(crate) use fake_gcs::FakeGcs;
pub(crate) use moto::Moto;
pub(crate) use s3s::S3sFs;

/// How long a server may take to answer its readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Starts per server; a retry picks a new port in case another process took the first one.
const ATTEMPTS: u32 = 3;

/// What servers may need from the run that starts them.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// The repository: its `.tools` directory and the cargo that runs xtask.
    pub project: &'a Project,
    /// The test virtualenv (`.tools/py`), which holds the Python-based servers.
    pub test_venv: &'a Venv,
    /// Where each server's output goes, as `<name>.log`.
    pub log_dir: PathBuf,
    /// This run's own temporary directory (server data, generated keys), removed at the end of
    /// the run, after the servers are stopped.
    run_dir: tempfile::TempDir,
}

impl<'a> Context<'a> {
    /// A context with a fresh temporary directory for this run in the system's temporary
    /// directory.
    pub(crate) fn new(project: &'a Project, test_venv: &'a Venv, log_dir: PathBuf) -> Result<Self> {
        Self::new_in(project, test_venv, log_dir, &std::env::temp_dir())
    }

    /// A context whose fresh temporary directory is made inside `parent`. The benchmarks keep
    /// server data on tmpfs this way, so that a server's disk never enters their numbers.
    pub(crate) fn new_in(
        project: &'a Project,
        test_venv: &'a Venv,
        log_dir: PathBuf,
        parent: &Path,
    ) -> Result<Self> {
        let run_dir = tempfile::Builder::new()
            .prefix("xtask-servers-")
            .tempdir_in(parent)
            .with_context(|| {
                format!(
                    "cannot create a temporary directory for the test servers in {}",
                    parent.display()
                )
            })?;
        Ok(Self {
            project,
            test_venv,
            log_dir,
            run_dir,
        })
    }

    /// This run's temporary directory.
    pub(crate) fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }
}

/// One kind of test server.
pub(crate) trait Server {
    /// Short name, used in messages and for the log file.
    fn name(&self) -> &'static str;
    /// Makes sure the server's program is installed (cached between runs).
    fn install(&self, context: &Context<'_>) -> Result<()>;
    /// Makes what the server needs before it starts (data directories, keys); once per run.
    fn prepare(&self, _context: &Context<'_>) -> Result<()> {
        Ok(())
    }
    /// The command that runs the server in the foreground on `127.0.0.1:port`.
    fn command(&self, context: &Context<'_>, port: u16) -> Result<Command>;
    /// Whether the server on `port` answers; polled until it does.
    fn is_ready(&self, port: u16) -> bool {
        http_answers(port)
    }
    /// Sets up what the tests expect on the ready server (a container, a bucket).
    fn set_up(&self, _context: &Context<'_>, _port: u16) -> Result<()> {
        Ok(())
    }
    /// The variables that tell the tests where the server is.
    fn env(&self, context: &Context<'_>, port: u16) -> Vec<(String, String)>;
}

/// Every server the tests use, in start order.
pub(crate) fn all() -> Vec<Box<dyn Server>> {
    vec![
        Box::new(Moto),
        Box::new(S3sFs),
        Box::new(Azurite),
        Box::new(FakeGcs),
    ]
}

/// Running servers; dropping this stops them all.
#[derive(Debug, Default)]
pub(crate) struct Servers {
    running: Vec<Running>,
}

impl Servers {
    /// Installs and starts every server, waiting until each is ready. Servers already started
    /// are stopped again if a later one fails.
    pub(crate) fn start(context: &Context<'_>, servers: &[Box<dyn Server>]) -> Result<Self> {
        fs::create_dir_all(&context.log_dir)
            .with_context(|| format!("cannot create {}", context.log_dir.display()))?;
        let mut started = Self::default();
        for server in servers {
            let start = Instant::now();
            server
                .install(context)
                .with_context(|| format!("installing test server {}", server.name()))?;
            println!(
                "{} installed in {:.1} s",
                server.name(),
                start.elapsed().as_secs_f64()
            );
            server
                .prepare(context)
                .with_context(|| format!("preparing test server {}", server.name()))?;
            let running = start_one(context, server.as_ref())
                .with_context(|| format!("starting test server {}", server.name()))?;
            started.running.push(running);
        }
        Ok(started)
    }

    /// The CPU time (user plus system) the running servers' processes have taken so far, in
    /// seconds, from `/proc` (Linux only): the benchmarks read it before and after a step to tell
    /// what the step cost the server, which on a 2-core machine shares the cores with the client.
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        // `/proc` counts in USER_HZ, 100 a second on x86 and arm64 alike.
        const TICKS_PER_SECOND: f64 = 100.0;
        let mut ticks = 0_u64;
        for running in &self.running {
            let path = format!("/proc/{}/stat", running.child.id());
            let stat = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
            // The fields after the command name, which is in parentheses and may hold spaces:
            // utime and stime are the 14th and 15th of the whole line.
            let after_name = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest)
                .with_context(|| format!("{path} has no command name: {stat:?}"))?;
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            for index in [11, 12] {
                let field = fields
                    .get(index)
                    .with_context(|| format!("{path} is too short: {stat:?}"))?;
                ticks += field
                    .parse::<u64>()
                    .with_context(|| format!("{path} field {} is {field:?}", index + 3))?;
            }
        }
        Ok(ticks as f64 / TICKS_PER_SECOND)
    }

    /// The variables that tell the tests where every running server is.
    pub(crate) fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.running.iter().flat_map(|running| {
            running
                .env
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
        })
    }
}

/// One started server process, stopped on drop.
#[derive(Debug)]
struct Running {
    name: &'static str,
    child: Child,
    env: Vec<(String, String)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Test servers keep nothing worth a graceful shutdown; make sure none outlives the run.
        if let Err(error) = self.child.kill() {
            eprintln!("stopping test server {}: {error}", self.name);
        }
        if let Err(error) = self.child.wait() {
            eprintln!("reaping test server {}: {error}", self.name);
        }
    }
}

fn start_one(context: &Context<'_>, server: &dyn Server) -> Result<Running> {
    let log_path = context.log_dir.join(format!("{}.log", server.name()));
    let mut last_error = None;
    for attempt in 1..=ATTEMPTS {
        let port = free_port()?;
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let err_log = log
            .try_clone()
            .with_context(|| format!("cannot reopen {}", log_path.display()))?;
        let mut command = server.command(context, port)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log));
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", describe(&command)))?;
        let mut running = Running {
            name: server.name(),
            child,
            env: server.env(context, port),
        };
        match wait_ready(server, &mut running, port, &log_path) {
            Ok(elapsed) => {
                // A failed set-up is not a busy port: retrying would only fail again.
                server.set_up(context, port).with_context(|| {
                    format!(
                        "setting up {} on 127.0.0.1:{port}; its log says:\n{}",
                        server.name(),
                        read_tail(&log_path)
                    )
                })?;
                println!(
                    "{} ready on 127.0.0.1:{port} in {:.1} s (log: {})",
                    server.name(),
                    elapsed.as_secs_f64(),
                    log_path.display()
                );
                return Ok(running);
            }
            Err(error) => {
                eprintln!("{} attempt {attempt} failed: {error:#}", server.name());
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}

fn wait_ready(
    server: &dyn Server,
    running: &mut Running,
    port: u16,
    log_path: &Path,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if server.is_ready(port) {
            return Ok(start.elapsed());
        }
        if let Some(status) = running.child.try_wait()? {
            bail!(
                "exited early ({status}); its log says:\n{}",
                read_tail(log_path)
            );
        }
        if start.elapsed() > READY_TIMEOUT {
            bail!(
                "not ready after {} s; its log says:\n{}",
                READY_TIMEOUT.as_secs(),
                read_tail(log_path)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn read_tail(path: &Path) -> String {
    fs::read_to_string(path)
        .map(|text| tail(&text, 30))
        .unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()))
}

/// An HTTP client for setting servers up; callers examine the status themselves.
fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Fails unless `response` has a success status, showing its body.
fn check_success(what: &str, mut response: ureq::http::Response<ureq::Body>) -> Result<()> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|error| format!("(unreadable body: {error})"));
    bail!("{what}: HTTP {status}: {}", tail(&body, 20))
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether an HTTP server on `127.0.0.1:port` answers `GET /` with any status.
fn http_answers(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut start = [0_u8; 5];
    stream.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_listening_is_not_ready() -> Result<()> {
        let port = free_port()?;
        assert!(!http_answers(port));
        Ok(())
    }

    #[test]
    fn an_http_answer_is_ready() -> Result<()> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let server = thread::spawn(move || -> std::io::Result<()> {
            let (mut stream, _) = listener.accept()?;
            let mut request = [0_u8; 16];
            stream.read_exact(&mut request)?;
            stream.write_all(b"HTTP/1.0 404 Not Found\r\n\r\n")
        });
        assert!(http_answers(port));
        match server.join() {
            Ok(served) => served?,
            Err(_) => bail!("server thread panicked"),
        }
        Ok(())
    }
}
