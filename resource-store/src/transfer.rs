//! Robust reading of a [`ByteSource`]: resume at the current offset after a transient failure or an
//! early end, and detect a stalled transfer.
//!
//! The worker's hash and unpacking see one uninterrupted stream; resumption happens underneath.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::thread;
use std::time::Duration;

use crate::error::StoreError;
use crate::source::ByteSource;

/// Bytes read from the source per chunk.
const CHUNK_LEN: usize = 1 << 20;
/// Chunks read ahead of the consumer.
const READ_AHEAD: usize = 4;

/// How hard to try when fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Whole attempts (a fresh temporary directory each) before giving up.
    pub attempts: u32,
    /// Resumptions at the current offset within one attempt.
    pub resumes_per_attempt: u32,
    /// The pause before the first retry; doubled each time.
    pub first_backoff: Duration,
    /// How long no byte may arrive before the transfer counts as stalled.
    pub stall_timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            resumes_per_attempt: 5,
            first_backoff: Duration::from_millis(100),
            stall_timeout: Duration::from_secs(60),
        }
    }
}

/// Wraps a [`StoreError`] so it can travel through `io::Read`.
pub(crate) fn to_io(error: StoreError) -> io::Error {
    io::Error::other(error)
}

/// Recovers a [`StoreError`] that travelled through `io::Read`, or wraps a plain I/O error.
pub(crate) fn from_io(error: io::Error, location: &str) -> StoreError {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<StoreError>())
    {
        if let Some(inner) = error.into_inner() {
            if let Ok(store_error) = inner.downcast::<StoreError>() {
                return *store_error;
            }
            return StoreError::Task("an error lost its type".into());
        }
        return StoreError::Task("an error lost its payload".into());
    }
    StoreError::io(location, error)
}

/// Whether retrying could help: not for what is missing, forbidden or unsupported.
pub(crate) fn is_transient(error: &StoreError) -> bool {
    match error {
        StoreError::Io { cause, .. } => !matches!(
            cause.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::IsADirectory
        ),
        StoreError::HttpStatus { status, .. } => matches!(status, 408 | 429 | 500..=599),
        StoreError::Stalled { .. }
        | StoreError::Truncated { .. }
        | StoreError::Http { .. }
        | StoreError::Task(_) => true,
        _ => false,
    }
}

/// A reader that reopens the source at its current offset when a read fails transiently or the
/// stream ends before the source's length.
pub(crate) struct ResumingReader {
    source: Arc<dyn ByteSource>,
    len: u64,
    pos: u64,
    inner: Option<Box<dyn Read + Send>>,
    resumes_left: u32,
    backoff: Duration,
}

impl ResumingReader {
    pub(crate) fn new(source: Arc<dyn ByteSource>, len: u64, policy: &FetchPolicy) -> Self {
        Self {
            source,
            len,
            pos: 0,
            inner: None,
            resumes_left: policy.resumes_per_attempt,
            backoff: policy.first_backoff,
        }
    }

    /// Decides whether to resume after `error`; returns it when not.
    fn resume_or(&mut self, error: StoreError) -> io::Result<()> {
        self.inner = None;
        if self.resumes_left == 0 || !is_transient(&error) {
            return Err(to_io(error));
        }
        self.resumes_left -= 1;
        thread::sleep(self.backoff);
        self.backoff = self.backoff.saturating_mul(2);
        Ok(())
    }
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let inner = match &mut self.inner {
                Some(inner) => inner,
                None => match self.source.open_from(self.pos) {
                    Ok(inner) => self.inner.insert(inner),
                    Err(error) => {
                        self.resume_or(error)?;
                        continue;
                    }
                },
            };
            match inner.read(buf) {
                Ok(0) if self.pos < self.len && !buf.is_empty() => {
                    let error = StoreError::Truncated {
                        url: self.source.location().to_owned(),
                        got: self.pos,
                        expected: self.len,
                    };
                    self.resume_or(error)?;
                }
                Ok(read) => {
                    self.pos += read as u64;
                    return Ok(read);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let error = from_io(error, self.source.location());
                    self.resume_or(error)?;
                }
            }
        }
    }
}

/// A reader fed by a thread that reads ahead, so that a source that stops sending is noticed after
/// `stall_timeout` instead of blocking forever. A stalled reading thread is abandoned; it ends when
/// its read returns.
pub(crate) struct ReadAhead {
    chunks: Receiver<io::Result<Vec<u8>>>,
    recycle: Sender<Vec<u8>>,
    current: Vec<u8>,
    consumed: usize,
    finished: bool,
    stall_timeout: Duration,
    location: String,
}

impl ReadAhead {
    pub(crate) fn spawn(
        mut reader: impl Read + Send + 'static,
        location: &str,
        stall_timeout: Duration,
    ) -> io::Result<Self> {
        let (chunk_tx, chunks): (SyncSender<io::Result<Vec<u8>>>, _) = sync_channel(READ_AHEAD);
        let (recycle, spare) = channel::<Vec<u8>>();
        thread::Builder::new()
            .name("resource-fetch".into())
            .spawn(move || {
                loop {
                    let mut buffer = spare.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK_LEN]);
                    buffer.resize(CHUNK_LEN, 0);
                    let message = fill(&mut reader, &mut buffer).map(|filled| {
                        buffer.truncate(filled);
                        buffer
                    });
                    let last = !matches!(&message, Ok(chunk) if !chunk.is_empty());
                    if chunk_tx.send(message).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(Self {
            chunks,
            recycle,
            current: Vec::new(),
            consumed: 0,
            finished: false,
            stall_timeout,
            location: location.to_owned(),
        })
    }
}

/// Reads until `buffer` is full or the stream ends.
fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.consumed == self.current.len() {
            if self.finished {
                return Ok(0);
            }
            match self.chunks.recv_timeout(self.stall_timeout) {
                Ok(Ok(chunk)) if chunk.is_empty() => {
                    self.finished = true;
                    return Ok(0);
                }
                Ok(Ok(chunk)) => {
                    let spent = std::mem::replace(&mut self.current, chunk);
                    // The reading thread may have ended; then the buffer is simply dropped.
                    let _ = self.recycle.send(spent);
                    self.consumed = 0;
                }
                Ok(Err(error)) => return Err(error),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(to_io(StoreError::Stalled {
                        url: self.location.clone(),
                        waited: self.stall_timeout,
                    }));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(to_io(StoreError::Task("the reading thread died".into())));
                }
            }
        }
        let available = &self.current[self.consumed..];
        let taken = available.len().min(buf.len());
        buf[..taken].copy_from_slice(&available[..taken]);
        self.consumed += taken;
        Ok(taken)
    }
}
