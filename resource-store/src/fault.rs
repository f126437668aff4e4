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
use crate::source::{ByteSource, Opening};

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

/// A source that injects `fault` into the first `faulty_transfers` streams that reach it: that
/// read up to the fault's offset, having started at or before it. Every stream reaches
/// [`Fault::RefuseOpen`], on opening.
#[derive(Debug)]
pub struct FaultySource {
    inner: Arc<dyn ByteSource>,
    fault: Fault,
    opened: AtomicU32,
    injections: Arc<Injections>,
}

/// How many streams the fault went into, and how many it may.
#[derive(Debug)]
struct Injections {
    done: AtomicU32,
    limit: u32,
}

impl Injections {
    /// Takes one of the injections left; `false` when none is.
    fn take(&self) -> bool {
        self.done
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |done| {
                (done < self.limit).then_some(done + 1)
            })
            .is_ok()
    }
}

impl FaultySource {
    /// Wraps `inner`; use `u32::MAX` transfers for a fault that never goes away.
    pub fn new(inner: Arc<dyn ByteSource>, fault: Fault, faulty_transfers: u32) -> Self {
        Self {
            inner,
            fault,
            opened: AtomicU32::new(0),
            injections: Arc::new(Injections {
                done: AtomicU32::new(0),
                limit: faulty_transfers,
            }),
        }
    }

    /// How many streams have been opened so far.
    pub fn transfers(&self) -> u32 {
        self.opened.load(Ordering::SeqCst)
    }

    /// How many streams the fault went into so far.
    pub fn faults(&self) -> u32 {
        self.injections.done.load(Ordering::SeqCst)
    }

    /// Counts a stream from `offset`; wraps it to inject the fault if it reaches it.
    fn open(
        &self,
        offset: u64,
        open: impl FnOnce() -> Result<Box<dyn Read + Send>>,
    ) -> Result<Box<dyn Read + Send>> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        if self.fault == Fault::RefuseOpen {
            if self.injections.take() {
                return Err(StoreError::HttpStatus {
                    url: self.inner.location().to_owned(),
                    status: 503,
                    hint: "injected fault",
                });
            }
            return open();
        }
        Ok(Box::new(FaultyReader {
            inner: open()?,
            fault: self.fault,
            pos: offset,
            // A stream that starts past the fault never reaches it.
            state: if offset <= self.fault.offset() {
                Strike::Ahead
            } else {
                Strike::Spared
            },
            injections: Arc::clone(&self.injections),
        }))
    }
}

impl Fault {
    /// Where the fault strikes in a stream; `u64::MAX` for one that strikes on opening.
    fn offset(self) -> u64 {
        match self {
            Fault::Truncate { at }
            | Fault::FlipByte { at }
            | Fault::FailMidStream { at }
            | Fault::Stall { at, .. } => at,
            Fault::RefuseOpen => u64::MAX,
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

    fn open_start(&self, want: u64) -> Result<Opening> {
        let mut opening = None;
        let body = self.open(0, || {
            let inner = self.inner.open_start(want)?;
            let Opening { body, .. } = opening.insert(inner);
            Ok(std::mem::replace(body, Box::new(io::empty())))
        })?;
        let opening = opening.ok_or(StoreError::BrokenInvariant {
            location: self.inner.location().to_owned(),
            invariant: "an opened first request has an answer",
        })?;
        Ok(Opening { body, ..opening })
    }

    fn read_tail(&self, len: u64) -> Result<Vec<u8>> {
        self.inner.read_tail(len)
    }

    fn open_from(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        self.open(offset, || self.inner.open_from(offset))
    }

    fn open_range(&self, offset: u64, len: u64) -> Result<Box<dyn Read + Send>> {
        self.open(offset, || self.inner.open_range(offset, len))
    }

    fn gains_from_parallel_ranges(&self) -> bool {
        self.inner.gains_from_parallel_ranges()
    }
}

/// Where a stream stands with its fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strike {
    /// Not at the fault's offset yet.
    Ahead,
    /// The fault went in: a truncation or a failure repeats on every later read.
    Struck,
    /// Past the fault without it: it went into enough streams already, or this one started past it.
    Spared,
}

struct FaultyReader {
    inner: Box<dyn Read + Send>,
    fault: Fault,
    pos: u64,
    state: Strike,
    injections: Arc<Injections>,
}

impl Read for FaultyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = self.fault.offset();
        if self.state == Strike::Ahead && self.pos >= at {
            self.state = if self.injections.take() {
                Strike::Struck
            } else {
                Strike::Spared
            };
        }
        match self.state {
            Strike::Spared => return self.pass(buf),
            Strike::Ahead => {
                // Read up to the fault's offset at most.
                let before = usize::try_from(at - self.pos).unwrap_or(usize::MAX);
                let len = buf.len().min(before);
                return self.pass(&mut buf[..len]);
            }
            Strike::Struck => {}
        }
        match self.fault {
            Fault::Truncate { .. } => Ok(0),
            Fault::FailMidStream { .. } => Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected fault: connection reset",
            )),
            Fault::Stall { pause, .. } => {
                thread::sleep(pause);
                self.state = Strike::Spared;
                self.pass(buf)
            }
            Fault::FlipByte { .. } => {
                let read = self.pass(buf)?;
                if let Some(first) = buf[..read].first_mut() {
                    *first ^= 0xff;
                }
                self.state = Strike::Spared;
                Ok(read)
            }
            Fault::RefuseOpen => self.pass(buf),
        }
    }
}

impl FaultyReader {
    /// Reads from the stream untouched.
    fn pass(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.pos += read as u64;
        Ok(read)
    }
}
