//! Where a worker reads a resource's bytes from: the [`ByteSource`] trait, and one module per
//! kind of source. [`open::open_url`] picks the source for a URL; it is the only place that knows
//! every kind.

pub mod file;
pub mod http;
pub mod object;
pub mod open;

use std::io::{self, Read};

use crate::error::Result;

/// The answer to a fetch's first request ([`ByteSource::open_start`]): the object's size and its
/// first bytes, all of them when it is short enough or when the source sends everything anyway.
pub struct Opening {
    /// The object's size in bytes.
    pub len: u64,
    /// A stream of the `body_len` bytes from offset 0.
    pub body: Box<dyn Read + Send>,
    /// How many bytes `body` holds: the range asked for, cut at the object's end, or the whole
    /// object from a source that answers a range with everything.
    pub body_len: u64,
    /// Whether later requests may ask for ranges and get just them: false for a web server that
    /// answered the range with the whole object, which it would send again for every request.
    pub ranged: bool,
}

impl Opening {
    /// Whether the body holds the whole object.
    pub fn is_whole(&self) -> bool {
        self.body_len >= self.len
    }

    /// An empty object's opening.
    pub fn empty() -> Self {
        Self {
            len: 0,
            body: Box::new(io::empty()),
            body_len: 0,
            ranged: true,
        }
    }
}

impl std::fmt::Debug for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opening")
            .field("len", &self.len)
            .field("body_len", &self.body_len)
            .field("ranged", &self.ranged)
            .finish_non_exhaustive()
    }
}

/// The stored bytes of a resource, as a worker reaches them.
///
/// A fetch starts with [`ByteSource::open_start`], one request that gives the size and the first
/// bytes (everything, for a small object); an archive's tail (its central directory) and further
/// ranges are asked for while that first body streams. A source offers all three.
pub trait ByteSource: Send + Sync {
    /// The URL or path, for messages.
    fn location(&self) -> &str;
    /// The total size in bytes.
    fn len(&self) -> Result<u64>;
    /// Whether the source is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// The first request of a fetch: the first `want` bytes (fewer when the object is shorter, or
    /// all of it from a server that ignores ranges), with the object's size from the same answer,
    /// so that no request is spent on the size alone. By default the size, then a range.
    fn open_start(&self, want: u64) -> Result<Opening> {
        let len = self.len()?;
        let body_len = want.min(len);
        Ok(Opening {
            len,
            body: self.open_range(0, body_len)?,
            body_len,
            ranged: true,
        })
    }
    /// The last `len` bytes (all of them if there are fewer).
    fn read_tail(&self, len: u64) -> Result<Vec<u8>>;
    /// A stream of the bytes from `offset` to the end (used to resume an interrupted transfer).
    fn open_from(&self, offset: u64) -> Result<Box<dyn Read + Send>>;
    /// A stream of the `len` bytes from `offset`, for fetching ranges side by side. By default the
    /// stream from `offset`, cut; remote sources ask for just the range, so that the server sends
    /// no more and the connection can serve the next range.
    fn open_range(&self, offset: u64, len: u64) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.open_from(offset)?.take(len)))
    }
    /// Whether several ranges fetched at once arrive faster than one stream: true for web servers
    /// and object stores that honour ranges, where each connection has a pace of its own; false
    /// for local files, read fastest in order.
    fn gains_from_parallel_ranges(&self) -> bool {
        false
    }
    /// How long a read of this source's streams waits for its next byte before it fails by
    /// itself with [`StoreError::Stalled`](crate::StoreError::Stalled), if it does. A fetch from
    /// a source whose reads fail within its stall timeout needs no thread to watch for stalls,
    /// and reads a small object on the calling thread. `None` (the default): a read may wait
    /// forever.
    fn read_timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

impl std::fmt::Debug for dyn ByteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.location())
    }
}
