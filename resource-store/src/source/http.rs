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

use crate::error::{Result, StoreError};
use crate::source::{ByteSource, Opening};

/// The time to connect and to receive response headers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// A resource behind an `http:` or `https:` URL.
#[derive(Debug)]
pub struct HttpSource {
    url: String,
    shown_as: String,
    agent: ureq::Agent,
    len: OnceLock<u64>,
    /// Whether the server answered the first range with a range (206).
    honours_ranges: OnceLock<bool>,
}

/// The URL without its query, which for presigned URLs holds the signature: safe to print.
pub fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

impl HttpSource {
    /// A source for `url`.
    pub fn new(url: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            // Status codes are examined here, to tell what is worth retrying.
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            url: url.to_owned(),
            shown_as: redact_query(url),
            agent,
            len: OnceLock::new(),
            honours_ranges: OnceLock::new(),
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
    fn body_at(&self, offset: u64, range: Option<String>) -> Result<ureq::BodyReader<'static>> {
        let response = self.get(range)?;
        let ranged = response.status().as_u16() == 206;
        let mut body = response.into_body().into_reader();
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
        let no_size = |what: &str| StoreError::Http {
            url: self.shown_as.clone(),
            cause: format!("the server gave no usable size: {what}"),
        };
        let (len, body_len) = match status {
            // `Content-Range: bytes 0-LAST/TOTAL`.
            206 => {
                let range = header("content-range").ok_or_else(|| no_size("no Content-Range"))?;
                let (first, last, total) = parse_content_range(&range)
                    .ok_or_else(|| no_size(&format!("Content-Range {range:?}")))?;
                if first != 0 || last >= total {
                    return Err(no_size(&format!(
                        "Content-Range {range:?} for the range bytes=0-{last}"
                    )));
                }
                (total, last + 1)
            }
            // `Content-Range: bytes */0`: the range cannot be satisfied, the object is empty.
            416 => {
                let total = header("content-range")
                    .and_then(|range| {
                        range
                            .rsplit_once('/')
                            .and_then(|(_, total)| total.parse::<u64>().ok())
                    })
                    .ok_or_else(|| no_size("a 416 answer without Content-Range"))?;
                if total != 0 {
                    return Err(no_size(&format!("416 for bytes=0-{last} of {total} bytes")));
                }
                (0, 0)
            }
            // The whole object, whatever was asked.
            _ => {
                let total = header("content-length")
                    .and_then(|len| len.parse::<u64>().ok())
                    .ok_or_else(|| no_size("no Content-Length"))?;
                (total, total)
            }
        };
        let ranged = status != 200;
        let _ = self.honours_ranges.set(ranged);
        let _ = self.len.set(len);
        let body: Box<dyn Read + Send> = if body_len == 0 {
            Box::new(io::empty())
        } else {
            Box::new(response.into_body().into_reader().take(body_len))
        };
        Ok(Opening {
            len,
            body,
            body_len,
            ranged,
        })
    }
}

/// `(first, last, total)` from a `Content-Range` of `bytes FIRST-LAST/TOTAL`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (span, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
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
}
