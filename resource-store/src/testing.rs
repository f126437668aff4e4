//! A small HTTP file server for tests and benchmarks: it serves a directory with range support
//! (or, on demand, ignoring ranges as some servers do), counts requests and bytes, logs the range
//! each request asked for, and can answer the first requests with an error status.
//!
//! Enabled by the `testing` feature; it listens on 127.0.0.1 only and stops when dropped. Also
//! deterministic test data ([`noise`]).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The sorted names in `root` that are not hidden (`.locks` and `.meta` are): the installed
/// entries plus any temporary directory left behind. Empty when `root` is missing.
pub fn visible_entries(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Makes a fresh bucket, `PURPOSE<pid>`, on the moto server at `endpoint` with an unsigned `PUT`,
/// which moto allows, and returns its name.
pub fn create_moto_bucket(endpoint: &str, purpose: &str) -> io::Result<String> {
    let bucket = format!("{purpose}{}", std::process::id());
    let url = format!("{}/{bucket}", endpoint.trim_end_matches('/'));
    let response = ureq::put(&url)
        .send_empty()
        .map_err(|error| io::Error::other(format!("creating bucket {bucket} at {url}: {error}")))?;
    if !response.status().is_success() {
        return Err(io::Error::other(format!(
            "creating bucket {bucket} at {url}: {}",
            response.status()
        )));
    }
    Ok(bucket)
}

/// Makes a fresh bucket, `PURPOSE-<pid>`, on the fake-gcs-server at `endpoint` through its JSON
/// API (unauthenticated, which it allows), and returns its name.
pub fn create_fake_gcs_bucket(endpoint: &str, purpose: &str) -> io::Result<String> {
    let bucket = format!("{purpose}-{}", std::process::id());
    let url = format!("{}/storage/v1/b", endpoint.trim_end_matches('/'));
    let failed =
        |cause: String| io::Error::other(format!("creating bucket {bucket} at {url}: {cause}"));
    let response = ureq::post(&url)
        .header("Content-Type", "application/json")
        .send(format!(r#"{{"name": "{bucket}"}}"#))
        .map_err(|error| failed(error.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(response.status().to_string()));
    }
    Ok(bucket)
}

/// Deterministic bytes that neither compress nor repeat (xorshift), for test inputs.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // The low byte of the state is the output.
            (state & 0xff) as u8
        })
        .collect()
}

/// What the server saw for one path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Every GET.
    pub requests: u32,
    /// Content bytes sent in answer (what a client set out to fetch, whether or not it read all).
    pub bytes_sent: u64,
}

impl RequestCounts {
    /// How many whole copies of an object `len` bytes long were sent: 1 for a client that
    /// fetched it once, in one stream or in ranges, with small probes on top.
    pub fn whole_copies(&self, len: u64) -> u64 {
        self.bytes_sent.checked_div(len).unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct Shared {
    counts: Mutex<HashMap<String, RequestCounts>>,
    /// Per path, the `Range` header of each request in the order they came (`None`: no range).
    ranges_asked: Mutex<HashMap<String, Vec<Option<String>>>>,
    /// Whether `Range` headers are ignored: every answer is a 200 with the whole file.
    ignore_ranges: AtomicBool,
    fail_next: AtomicU32,
    fail_status: AtomicU32,
    /// Milliseconds to wait before answering a request that asks for content.
    first_byte_delay_ms: AtomicU64,
    /// The most bytes per second a response body is sent at; 0 for no limit.
    body_bytes_per_second: AtomicU64,
    /// Answers still to stall, after how many body bytes, and for how many milliseconds.
    stall_next: AtomicU32,
    stall_after: AtomicU64,
    stall_ms: AtomicU64,
    /// Requests being answered now, and the most at once so far (each request has a connection
    /// of its own: answers close it).
    open_now: AtomicU32,
    most_open: AtomicU32,
    stopping: AtomicBool,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct HttpFileServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl HttpFileServer {
    /// Serves the files in `dir` on a free port of 127.0.0.1.
    pub fn serve(dir: &Path) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let dir = dir.to_path_buf();
        let accepting = Arc::clone(&shared);
        thread::Builder::new()
            .name("test-http".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accepting.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&accepting);
                    let dir = dir.clone();
                    let _ = thread::Builder::new().spawn(move || {
                        let open = shared.open_now.fetch_add(1, Ordering::SeqCst) + 1;
                        shared.most_open.fetch_max(open, Ordering::SeqCst);
                        let _ = handle(stream, &dir, &shared);
                        shared.open_now.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })?;
        Ok(Self { addr, shared })
    }

    /// The URL of a file served from the directory.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// What was asked for `name` so far.
    pub fn counts(&self, name: &str) -> RequestCounts {
        self.shared
            .counts
            .lock()
            .map(|counts| counts.get(&format!("/{name}")).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The `Range` header of each request for `name` so far, in the order they came (`None` for
    /// a request without one).
    pub fn ranges_asked(&self, name: &str) -> Vec<Option<String>> {
        self.shared
            .ranges_asked
            .lock()
            .map(|log| log.get(&format!("/{name}")).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The most requests (and so connections) being answered at once so far, for any path.
    pub fn most_open_at_once(&self) -> u32 {
        self.shared.most_open.load(Ordering::SeqCst)
    }

    /// Whether to ignore `Range` headers from now on, answering every request with a 200 and the
    /// whole file, as some web servers do.
    pub fn ignore_ranges(&self, ignore: bool) {
        self.shared.ignore_ranges.store(ignore, Ordering::SeqCst);
    }

    /// Makes the next `count` answers that carry content stop for `pause` after `after` bytes of
    /// their body, then send the rest (if the client still listens).
    pub fn stall_next(&self, count: u32, after: u64, pause: Duration) {
        let pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
        self.shared.stall_after.store(after, Ordering::SeqCst);
        self.shared.stall_ms.store(pause_ms, Ordering::SeqCst);
        self.shared.stall_next.store(count, Ordering::SeqCst);
    }

    /// Answers the next `count` requests with `status` instead of content.
    pub fn fail_next(&self, count: u32, status: u16) {
        self.shared
            .fail_status
            .store(u32::from(status), Ordering::SeqCst);
        self.shared.fail_next.store(count, Ordering::SeqCst);
    }

    /// Paces the answers to requests for content: each waits `first_byte_delay` before its
    /// headers and sends its body at most at `body_bytes_per_second` (0 for no limit). This
    /// makes a server on which fetching several ranges at once pays (a slow body) or does not (a
    /// slow answer to every request).
    pub fn pace(&self, first_byte_delay: Duration, body_bytes_per_second: u64) {
        let delay_ms = u64::try_from(first_byte_delay.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .first_byte_delay_ms
            .store(delay_ms, Ordering::SeqCst);
        self.shared
            .body_bytes_per_second
            .store(body_bytes_per_second, Ordering::SeqCst);
    }
}

impl Drop for HttpFileServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn handle(stream: TcpStream, dir: &Path, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_owned());
        }
    }
    let mut out = stream;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return respond(&mut out, 400, &[], &[]);
    };
    let path = target.split('?').next().unwrap_or(target).to_owned();
    if method != "GET" {
        return respond(&mut out, 405, &[], &[]);
    }
    if shared
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
    {
        let status = u16::try_from(shared.fail_status.load(Ordering::SeqCst)).unwrap_or(500);
        return respond(&mut out, status, &[], b"injected failure");
    }
    let file_path: PathBuf = dir.join(path.trim_start_matches('/'));
    let Ok(mut file) = std::fs::File::open(&file_path) else {
        return respond(&mut out, 404, &[], b"not found");
    };
    let len = file.metadata()?.len();
    if let Ok(mut log) = shared.ranges_asked.lock() {
        log.entry(path.clone()).or_default().push(range.clone());
    }
    let span = if shared.ignore_ranges.load(Ordering::SeqCst) {
        None
    } else {
        range.as_deref().and_then(|range| parse_range(range, len))
    };
    if let Ok(mut counts) = shared.counts.lock() {
        let entry = counts.entry(path).or_default();
        entry.requests += 1;
        entry.bytes_sent += match span {
            None => len,
            Some(Some((start, end))) => end + 1 - start,
            Some(None) => 0,
        };
    }
    let delay_ms = shared.first_byte_delay_ms.load(Ordering::SeqCst);
    if delay_ms > 0 {
        thread::sleep(Duration::from_millis(delay_ms));
    }
    let pace = shared.body_bytes_per_second.load(Ordering::SeqCst);
    let stall = shared
        .stall_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
        .then(|| {
            (
                shared.stall_after.load(Ordering::SeqCst),
                Duration::from_millis(shared.stall_ms.load(Ordering::SeqCst)),
            )
        });
    let send_body = |from: &mut dyn Read, out: &mut TcpStream| -> io::Result<()> {
        if let Some((after, pause)) = stall {
            copy_paced(&mut from.take(after), out, pace)?;
            out.flush()?;
            thread::sleep(pause);
        }
        copy_paced(from, out, pace)
    };
    match span {
        None => {
            respond_head(&mut out, 200, &[("Content-Length", len.to_string())])?;
            send_body(&mut file, &mut out)?;
        }
        Some(None) => {
            respond(
                &mut out,
                416,
                &[("Content-Range", format!("bytes */{len}"))],
                &[],
            )?;
        }
        Some(Some((start, end))) => {
            file.seek(SeekFrom::Start(start))?;
            let count = end + 1 - start;
            respond_head(
                &mut out,
                206,
                &[
                    ("Content-Length", count.to_string()),
                    ("Content-Range", format!("bytes {start}-{end}/{len}")),
                ],
            )?;
            send_body(&mut file.take(count), &mut out)?;
        }
    }
    out.flush()
}

/// `Some(Some((start, end)))` for a satisfiable range, `Some(None)` for an unsatisfiable one,
/// `None` for no usable range header.
fn parse_range(range: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let spec = range.strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let (start, end) = if start.is_empty() {
        let suffix: u64 = end.parse().ok()?;
        (len.saturating_sub(suffix), len.checked_sub(1)?)
    } else {
        let start: u64 = start.parse().ok()?;
        let end = if end.is_empty() {
            len.checked_sub(1)
        } else {
            end.parse::<u64>()
                .ok()
                .map(|end| end.min(len.saturating_sub(1)))
        };
        match end {
            Some(end) => (start, end),
            None => return Some(None),
        }
    };
    if start >= len || start > end {
        return Some(None);
    }
    Some(Some((start, end)))
}

/// Copies `from` to `to` at most at `bytes_per_second` (0 for no limit).
fn copy_paced<R: Read + ?Sized>(
    from: &mut R,
    to: &mut impl Write,
    bytes_per_second: u64,
) -> io::Result<()> {
    if bytes_per_second == 0 {
        io::copy(from, to)?;
        return Ok(());
    }
    let mut link = PacedLink::new(bytes_per_second);
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        let read = from.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        link.send(to, &buffer[..read], Instant::now())?;
    }
}

/// A link that carries at most `bytes_per_second` (0 for no limit), one chunk after another,
/// each from when it is ready to go or when the link is free, whichever is later. So an idle link
/// banks no credit: a cap counted from a fixed start would let a response that waited its
/// first-byte time go out as one burst at loopback speed, which no real link does and which makes
/// a body look faster than its cap to whoever times it. And a sender that oversleeps loses
/// nothing: the chunks that waited for it were ready, and a real link would have carried them.
struct PacedLink {
    bytes_per_second: u64,
    /// When the link is free to carry the next byte.
    free_at: Instant,
}

impl PacedLink {
    fn new(bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second,
            free_at: Instant::now(),
        }
    }

    /// Writes `chunk`, ready to go since `ready_at`, to `to`, then waits until the link has
    /// carried it.
    fn send(&mut self, to: &mut impl Write, chunk: &[u8], ready_at: Instant) -> io::Result<()> {
        self.free_at = self.free_at.max(ready_at);
        to.write_all(chunk)?;
        if self.bytes_per_second > 0 {
            self.free_at +=
                Duration::from_secs_f64(chunk.len() as f64 / self.bytes_per_second as f64);
            if let Some(early) = self.free_at.checked_duration_since(Instant::now()) {
                thread::sleep(early);
            }
        }
        Ok(())
    }
}

fn respond_head(out: &mut TcpStream, status: u16, headers: &[(&str, String)]) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut headers = headers.to_vec();
    headers.push(("Content-Length", body.len().to_string()));
    respond_head(out, status, &headers)?;
    out.write_all(body)?;
    out.flush()
}

/// How a [`DelayProxy`] treats the bytes it forwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyOptions {
    /// How long after it arrived each chunk is delivered, in each direction: half the round trip
    /// it adds.
    pub delay: Duration,
    /// The most bytes per second each connection carries in each direction; 0 for no limit.
    pub bytes_per_second: u64,
}

/// A request that went through a [`DelayProxy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// `GET`, `PUT`, `HEAD`, …
    pub method: String,
    /// The target without its query.
    pub path: String,
    /// The query, if any (`uploads`, `partNumber=1&uploadId=…`).
    pub query: Option<String>,
    /// The body's length from `Content-Length` (0 without one).
    pub body_len: u64,
}

#[derive(Debug, Default)]
struct ProxyShared {
    requests: Mutex<Vec<ProxiedRequest>>,
    stopping: AtomicBool,
    /// Set when a request body came chunked, which the request log cannot follow.
    unparsed: AtomicBool,
}

/// A TCP proxy on 127.0.0.1 in front of an HTTP server, for tests and benchmarks: it delivers
/// each chunk [`ProxyOptions::delay`] after it arrived, in order, in both directions (a round trip
/// of latency in user space, as this kernel has no `netem`), optionally capped in bandwidth per
/// connection, and logs the requests that pass. Stops accepting when dropped.
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
}

impl DelayProxy {
    /// Starts a proxy to `upstream` on a free port of 127.0.0.1.
    pub fn start(upstream: SocketAddr, options: ProxyOptions) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(ProxyShared::default());
        let accepting = Arc::clone(&shared);
        thread::Builder::new()
            .name("test-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if accepting.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let shared = Arc::clone(&accepting);
                    let _ = thread::Builder::new().spawn(move || {
                        let _ = proxy_connection(client, upstream, options, &shared);
                    });
                }
            })?;
        Ok(Self { addr, shared })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for endpoints and URLs.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests so far, in the order they came. Fails when a request body came chunked, after
    /// which requests on that connection could not be told apart.
    pub fn requests(&self) -> io::Result<Vec<ProxiedRequest>> {
        if self.shared.unparsed.load(Ordering::SeqCst) {
            return Err(io::Error::other(
                "a request body came chunked: the proxy's request log is incomplete",
            ));
        }
        Ok(self
            .shared
            .requests
            .lock()
            .map(|requests| requests.clone())
            .unwrap_or_default())
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn proxy_connection(
    client: TcpStream,
    upstream: SocketAddr,
    options: ProxyOptions,
    shared: &Arc<ProxyShared>,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let upward = {
        let (from, to) = (client.try_clone()?, server.try_clone()?);
        let shared = Arc::clone(shared);
        thread::Builder::new().spawn(move || {
            let mut parser = RequestParser::default();
            forward_delayed(from, to, options, |chunk| parser.feed(chunk, &shared))
        })?
    };
    forward_delayed(server, client, options, |_| {})?;
    let _ = upward.join();
    Ok(())
}

/// Copies `from` to `to`, each chunk delivered `options.delay` after it arrived, paced to the
/// bandwidth cap; `observe` sees each chunk as it arrives. Ends by shutting down `to`'s writing
/// side when `from` ends.
fn forward_delayed(
    mut from: TcpStream,
    to: TcpStream,
    options: ProxyOptions,
    mut observe: impl FnMut(&[u8]),
) -> io::Result<()> {
    let (chunks, arrived) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let delivery = thread::Builder::new().spawn(move || -> io::Result<()> {
        let mut to = to;
        let mut link = PacedLink::new(options.bytes_per_second);
        for (at, chunk) in arrived {
            let due = at + options.delay;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            if link.send(&mut to, &chunk, due).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
        Ok(())
    })?;
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        observe(&buffer[..read]);
        if chunks
            .send((Instant::now(), buffer[..read].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(chunks);
    delivery
        .join()
        .map_err(|_| io::Error::other("the delivery thread panicked"))?
}

/// Follows the requests in one connection's client-to-server bytes.
#[derive(Debug, Default)]
struct RequestParser {
    head: Vec<u8>,
    body_left: u64,
    lost: bool,
}

impl RequestParser {
    fn feed(&mut self, mut bytes: &[u8], shared: &ProxyShared) {
        while !bytes.is_empty() && !self.lost {
            if self.body_left > 0 {
                let taken = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.body_left -= taken as u64;
                bytes = &bytes[taken..];
                continue;
            }
            let searched_from = self.head.len().saturating_sub(3);
            self.head.extend_from_slice(bytes);
            bytes = &[];
            let Some(end) = self.head[searched_from..]
                .windows(4)
                .position(|window| window == b"\r\n\r\n")
                .map(|at| searched_from + at + 4)
            else {
                continue;
            };
            let rest = self.head.split_off(end);
            let head = String::from_utf8_lossy(&self.head).into_owned();
            self.head.clear();
            let mut lines = head.split("\r\n");
            let mut request_line = lines.next().unwrap_or_default().split_whitespace();
            let method = request_line.next().unwrap_or_default().to_owned();
            let target = request_line.next().unwrap_or_default();
            let (path, query) = match target.split_once('?') {
                Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
                None => (target.to_owned(), None),
            };
            let mut body_len = 0;
            for line in lines {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let name = name.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    body_len = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("transfer-encoding")
                    && value.to_ascii_lowercase().contains("chunked")
                {
                    self.lost = true;
                    shared.unparsed.store(true, Ordering::SeqCst);
                }
            }
            if let Ok(mut requests) = shared.requests.lock() {
                requests.push(ProxiedRequest {
                    method,
                    path,
                    query,
                    body_len,
                });
            }
            self.body_left = body_len;
            // What followed the head is the body, then the next request: fed again.
            self.feed_rest(rest, shared);
        }
    }

    fn feed_rest(&mut self, rest: Vec<u8>, shared: &ProxyShared) {
        if !rest.is_empty() {
            self.feed(&rest, shared);
        }
    }
}
