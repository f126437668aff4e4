//! Fetching a resource over `http(s)`: presigned store URLs or any web server.
//!
//! The size comes with the first range, from its `Content-Range` (or the `Content-Length` of a
//! server that answers a range with everything; presigned URLs allow only the signed method, so
//! never a `HEAD`), the archive's tail from a range ending at the last byte (not a suffix range,
//! which Azure does not take), and an interrupted transfer resumes with an open range from the
//! current offset. A server that ignores ranges is read as the one stream it sends.
//! Responses are never decompressed: the MD5 covers the bytes as stored.

use std::io::{self, Read};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Result, StoreError, to_io};
use crate::source::{ByteSource, Opening};
use crate::transfer::FetchPolicy;

/// The time to connect and to receive response headers.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per host for reuse; ureq keeps 3 by default.
const IDLE_CONNECTIONS_KEPT: usize = 16;

/// A resource behind an `http:` or `https:` URL.
#[derive(Debug)]
pub struct HttpSource {
    url: String,
    shown_as: String,
    agent: ureq::Agent,
    len: OnceLock<u64>,
    /// Whether the server answered the first range with a range (206).
    honours_ranges: OnceLock<bool>,
    /// How long a read waits for its next byte before it fails as stalled.
    read_timeout: Duration,
}

/// The URL without its query, which for presigned URLs holds the signature: safe to print.
pub fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

impl HttpSource {
    /// A source for `url` whose reads fail as stalled after the default fetch policy's
    /// [`FetchPolicy::stall_timeout`] without a byte.
    pub fn new(url: &str) -> Self {
        Self::with_read_timeout(url, FetchPolicy::default().stall_timeout)
    }

    /// A source for `url` whose reads fail as stalled ([`StoreError::Stalled`]) after
    /// `read_timeout` without a byte: the socket's own timeout, so that a fetch reading on the
    /// calling thread needs no second thread to notice a stall.
    pub fn with_read_timeout(url: &str, read_timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .timeout_per_read(Some(read_timeout))
            // Status codes are examined here, to tell what is worth retrying.
            .http_status_as_error(false)
            // A fetch keeps up to twice its parallel ranges' connections busy (bodies ask for
            // the next range shortly before they end); keeping them all for reuse saves each
            // later range a new connection (a round trip, and a TLS handshake over https).
            .max_idle_connections_per_host(IDLE_CONNECTIONS_KEPT)
            .build()
            .into();
        Self {
            url: url.to_owned(),
            shown_as: redact_query(url),
            agent,
            len: OnceLock::new(),
            honours_ranges: OnceLock::new(),
            read_timeout,
        }
    }

    /// `body`, whose reads' timeouts are told as the stall they are.
    fn watched(&self, body: ureq::BodyReader<'static>) -> StallNamed {
        StallNamed {
            body,
            url: self.shown_as.clone(),
            waited: self.read_timeout,
        }
    }

    fn get(&self, range: Option<String>) -> Result<ureq::http::Response<ureq::Body>> {
        let mut request = self.agent.get(&self.url);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        let response = request.call().map_err(|error| StoreError::Http {
            url: self.shown_as.clone(),
            cause: error.to_string(),
        })?;
        let status = response.status().as_u16();
        if status >= 400 && status != 416 {
            return Err(StoreError::HttpStatus {
                url: self.shown_as.clone(),
                status,
                hint: status_hint(status),
            });
        }
        Ok(response)
    }

    /// The body of a GET with `range`, which starts at `offset`, positioned at `offset` even when
    /// the server ignores the range and sends everything.
    fn body_at(&self, offset: u64, range: Option<String>) -> Result<StallNamed> {
        let response = self.get(range)?;
        let ranged = response.status().as_u16() == 206;
        let mut body = self.watched(response.into_body().into_reader());
        if offset > 0 && !ranged {
            io::copy(&mut (&mut body).take(offset), &mut io::sink())
                .map_err(|cause| StoreError::io(&self.shown_as, cause))?;
        }
        Ok(body)
    }

    /// Asks for the first `want` bytes; see [`ByteSource::open_start`].
    fn open_first(&self, want: u64) -> Result<Opening> {
        let last = want.max(1) - 1;
        let response = self.get(Some(format!("bytes=0-{last}")))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let (len, body_len) = first_answer_size(
            status,
            header("content-range").as_deref(),
            header("content-length").as_deref(),
        )
        .ok_or_else(|| StoreError::Http {
            url: self.shown_as.clone(),
            cause: format!(
                "the server gave no usable size for bytes=0-{last} (no well-formed \
                 Content-Range or Content-Length in its {status} answer)"
            ),
        })?;
        let ranged = status != 200;
        let _ = self.honours_ranges.set(ranged);
        let _ = self.len.set(len);
        let body: Box<dyn Read + Send> = if body_len == 0 {
            Box::new(io::empty())
        } else {
            Box::new(
                self.watched(response.into_body().into_reader())
                    .take(body_len),
            )
        };
        Ok(Opening {
            len,
            body,
            body_len,
            ranged,
        })
    }
}

/// `(object size, body bytes)` from the answer to the first request (a GET of `bytes=0-LAST`):
/// a 206's `Content-Range: bytes 0-LAST/TOTAL`, a 416's `bytes */0` (only an empty object cannot
/// satisfy a range from 0), or else the `Content-Length` of a server that ignored the range and
/// sends everything. `None` when the answer does not say, or says it in a form RFC 9110 does not
/// allow.
#[doc(hidden)]
pub fn first_answer_size(
    status: u16,
    content_range: Option<&str>,
    content_length: Option<&str>,
) -> Option<(u64, u64)> {
    match status {
        206 => match parse_content_range(content_range?)? {
            ContentRange::Satisfied {
                first: 0,
                last,
                total,
            } => Some((total, last + 1)),
            _ => None,
        },
        416 => match parse_content_range(content_range?)? {
            ContentRange::Unsatisfied { total: 0 } => Some((0, 0)),
            _ => None,
        },
        _ => parse_digits(content_length?.trim()).map(|total| (total, total)),
    }
}

/// A `Content-Range` header value (RFC 9110, section 14.4), with a known complete length.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes FIRST-LAST/TOTAL`, with `FIRST <= LAST < TOTAL`.
    Satisfied {
        /// The first byte sent.
        first: u64,
        /// The last byte sent.
        last: u64,
        /// The object's size.
        total: u64,
    },
    /// `bytes */TOTAL`: the range asked for is not satisfiable (the answer of a 416).
    Unsatisfied {
        /// The object's size.
        total: u64,
    },
}

/// Parses a `Content-Range` value; `None` unless it is well formed (an unknown complete length,
/// `/*`, gives no size and is refused too).
#[doc(hidden)]
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let (unit, rest) = value.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.trim_start_matches(' ').split_once('/')?;
    let total = parse_digits(total)?;
    if range == "*" {
        return Some(ContentRange::Unsatisfied { total });
    }
    let (first, last) = range.split_once('-')?;
    let (first, last) = (parse_digits(first)?, parse_digits(last)?);
    (first <= last && last < total).then_some(ContentRange::Satisfied { first, last, total })
}

/// A decimal number of ASCII digits only (`u64::from_str` also takes a leading `+`, which HTTP's
/// `1*DIGIT` does not).
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// What to tell a user for an HTTP error status.
fn status_hint(status: u16) -> &'static str {
    match status {
        403 => {
            "forbidden: the URL has expired or its signature is wrong; run `resource refresh` on the leader to re-sign it"
        }
        404 => "no such object: the resource was deleted from the job store; create it again",
        408 | 429 => "the server is busy; retried",
        500..=599 => "the server failed; retried",
        _ => "the request was refused",
    }
}

impl ByteSource for HttpSource {
    fn location(&self) -> &str {
        &self.shown_as
    }

    fn len(&self) -> Result<u64> {
        if let Some(len) = self.len.get() {
            return Ok(*len);
        }
        // A one-byte first range: the size, and one byte that is not read.
        let len = self.open_first(1)?.len;
        Ok(*self.len.get_or_init(|| len))
    }

    fn open_start(&self, want: u64) -> Result<Opening> {
        self.open_first(want)
    }

    fn read_tail(&self, len: u64) -> Result<Vec<u8>> {
        let total = self.len()?;
        let wanted = len.min(total);
        if wanted == 0 {
            return Ok(Vec::new());
        }
        // An explicit range, not a suffix one (`bytes=-N`): Azure Blob Storage does not take
        // suffix ranges (Azurite answers with a broken Content-Length), and the size is known.
        let start = total - wanted;
        let body = self.body_at(start, Some(format!("bytes={start}-{}", total - 1)))?;
        let mut tail = Vec::with_capacity(usize::try_from(wanted).unwrap_or(0));
        body.take(wanted)
            .read_to_end(&mut tail)
            .map_err(|cause| StoreError::io(&self.shown_as, cause))?;
        Ok(tail)
    }

    fn open_from(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        let range = (offset > 0).then(|| format!("bytes={offset}-"));
        Ok(Box::new(self.body_at(offset, range)?))
    }

    fn open_range(&self, offset: u64, len: u64) -> Result<Box<dyn Read + Send>> {
        if len == 0 {
            return Ok(Box::new(io::empty()));
        }
        let last = offset.saturating_add(len - 1);
        let body = self.body_at(offset, Some(format!("bytes={offset}-{last}")))?;
        Ok(Box::new(body.take(len)))
    }

    fn gains_from_parallel_ranges(&self) -> bool {
        // Known once the size is: a server that ignores ranges would send everything per range.
        self.honours_ranges.get().copied().unwrap_or(false)
    }

    fn read_timeout(&self) -> Option<Duration> {
        Some(self.read_timeout)
    }
}

/// A response body whose reads fail with [`StoreError::Stalled`] when the socket's read timeout
/// passes without a byte, rather than with ureq's bare "timeout".
struct StallNamed {
    body: ureq::BodyReader<'static>,
    url: String,
    waited: Duration,
}

impl Read for StallNamed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.body.read(buf).map_err(|error| {
            let timed_out = matches!(
                error
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<ureq::Error>()),
                Some(ureq::Error::Timeout(_))
            ) || error.kind() == io::ErrorKind::TimedOut;
            if timed_out {
                to_io(StoreError::Stalled {
                    url: self.url.clone(),
                    waited: self.waited,
                })
            } else {
                error
            }
        })
    }
}
