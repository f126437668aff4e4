//! Fault injection: a [`ByteSource`] wrapper that truncates, flips bytes, fails mid-stream, stalls,
//! or refuses to open, in the first N streams that reach the fault or in all of them.
//!
//! It exists so that tests (ours and those of projects using this crate) can prove that every fault
//! is detected, transient ones are recovered, and nothing wrong is ever installed.
//!
//! ```
//! use std::sync::Arc;
//! use resource_store::fault::{Fault, FaultySource};
//! # fn wrap(inner: Arc<dyn resource_store::ByteSource>) -> Arc<dyn resource_store::ByteSource> {
//! // Flip the byte at offset 100 in the first transfer only; a retry then succeeds.
//! Arc::new(FaultySource::new(inner, Fault::FlipByte { at: 100 }, 1))
//! # }
//! ```

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use crate::error::{Result, StoreError};
use crate::source::ByteSource;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The stream ends early, at this offset.
    Truncate {
        /// Where the stream ends.
        at: u64,
    },
    /// The byte at this offset arrives inverted.
    FlipByte {
        /// Which byte.
        at: u64,
    },
    /// Reading fails with a connection reset at this offset.
    FailMidStream {
        /// Where the failure happens.
        at: u64,
    },
    /// Reading pauses at this offset for a while.
    Stall {
        /// Where the pause happens.
        at: u64,
        /// How long it lasts.
        pause: Duration,
    },
    /// Opening the stream fails as a busy server would (HTTP 503).
    RefuseOpen,
}

/// A source that injects `fault` into the first `faulty_transfers` streams that reach it: streams
/// that start at or before the fault's offset and, for a range, end after it. Every stream reaches
/// [`Fault::RefuseOpen`].
#[derive(Debug)]
pub struct FaultySource {
    inner: Arc<dyn ByteSource>,
    fault: Fault,
    faulty_transfers: u32,
    opened: AtomicU32,
    injected: AtomicU32,
}

impl FaultySource {
    /// Wraps `inner`; use `u32::MAX` transfers for a fault that never goes away.
    pub fn new(inner: Arc<dyn ByteSource>, fault: Fault, faulty_transfers: u32) -> Self {
        Self {
            inner,
            fault,
            faulty_transfers,
            opened: AtomicU32::new(0),
            injected: AtomicU32::new(0),
        }
    }

    /// How many streams have been opened so far.
    pub fn transfers(&self) -> u32 {
        self.opened.load(Ordering::SeqCst)
    }

    /// How many streams the fault was injected into so far.
    pub fn faults(&self) -> u32 {
        self.injected.load(Ordering::SeqCst)
    }

    /// The offset where the fault strikes; `None` for one that strikes on opening.
    fn offset(&self) -> Option<u64> {
        match self.fault {
            Fault::Truncate { at }
            | Fault::FlipByte { at }
            | Fault::FailMidStream { at }
            | Fault::Stall { at, .. } => Some(at),
            Fault::RefuseOpen => None,
        }
    }

    /// Counts a stream over `offset..end` and tells whether the fault goes into it.
    fn strikes(&self, offset: u64, end: u64) -> bool {
        self.opened.fetch_add(1, Ordering::SeqCst);
        let reaches = self.offset().is_none_or(|at| offset <= at && at < end);
        reaches
            && self
                .injected
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |injected| {
                    (injected < self.faulty_transfers).then_some(injected + 1)
                })
                .is_ok()
    }

    /// `stream`, starting at `offset`, with the fault in it.
    fn faulty(&self, stream: Box<dyn Read + Send>, offset: u64) -> Box<dyn Read + Send> {
        Box::new(FaultyReader {
            inner: stream,
            fault: self.fault,
            pos: offset,
            done: false,
        })
    }

    fn refused(&self) -> StoreError {
        StoreError::HttpStatus {
            url: self.inner.location().to_owned(),
            status: 503,
            hint: "injected fault",
        }
    }
}

impl ByteSource for FaultySource {
    fn location(&self) -> &str {
        self.inner.location()
    }

    fn len(&self) -> Result<u64> {
        self.inner.len()
    }

    fn read_tail(&self, len: u64) -> Result<Vec<u8>> {
        self.inner.read_tail(len)
    }

    fn open_from(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        if !self.strikes(offset, u64::MAX) {
            return self.inner.open_from(offset);
        }
        if self.fault == Fault::RefuseOpen {
            return Err(self.refused());
        }
        Ok(self.faulty(self.inner.open_from(offset)?, offset))
    }

    fn open_range(&self, offset: u64, len: u64) -> Result<Box<dyn Read + Send>> {
        if !self.strikes(offset, offset.saturating_add(len)) {
            return self.inner.open_range(offset, len);
        }
        if self.fault == Fault::RefuseOpen {
            return Err(self.refused());
        }
        Ok(self.faulty(self.inner.open_range(offset, len)?, offset))
    }

    fn gains_from_parallel_ranges(&self) -> bool {
        self.inner.gains_from_parallel_ranges()
    }
}

struct FaultyReader {
    inner: Box<dyn Read + Send>,
    fault: Fault,
    pos: u64,
    done: bool,
}

impl Read for FaultyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = match self.fault {
            Fault::Truncate { at }
            | Fault::FlipByte { at }
            | Fault::FailMidStream { at }
            | Fault::Stall { at, .. } => at,
            Fault::RefuseOpen => u64::MAX,
        };
        if self.done || self.pos < at && self.pos + buf.len() as u64 <= at {
            let read = self.inner.read(buf)?;
            self.pos += read as u64;
            return Ok(read);
        }
        if self.pos < at {
            // Read up to the fault's offset first.
            let before = usize::try_from(at - self.pos).unwrap_or(buf.len());
            let read = self.inner.read(&mut buf[..before])?;
            self.pos += read as u64;
            return Ok(read);
        }
        match self.fault {
            Fault::Truncate { .. } => Ok(0),
            Fault::FailMidStream { .. } => Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected fault: connection reset",
            )),
            Fault::Stall { pause, .. } => {
                thread::sleep(pause);
                self.done = true;
                self.read(buf)
            }
            Fault::FlipByte { .. } => {
                let read = self.inner.read(buf)?;
                if let Some(first) = buf[..read].first_mut() {
                    *first ^= 0xff;
                }
                self.pos += read as u64;
                self.done = true;
                Ok(read)
            }
            Fault::RefuseOpen => {
                let read = self.inner.read(buf)?;
                self.pos += read as u64;
                Ok(read)
            }
        }
    }
}
