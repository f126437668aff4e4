//! Where a worker reads a resource's bytes from: the [`ByteSource`] trait, and one module per
//! kind of source. [`open::open_url`] picks the source for a URL; it is the only place that knows
//! every kind.

pub mod file;
pub mod http;
pub mod object;
pub mod open;

use std::io::Read;

use crate::error::Result;

/// The stored bytes of a resource, as a worker reaches them.
///
/// Archives are read tail first (their central directory) and then as one sequential stream, so a
/// source offers both.
pub trait ByteSource: Send + Sync {
    /// The URL or path, for messages.
    fn location(&self) -> &str;
    /// The total size in bytes.
    fn len(&self) -> Result<u64>;
    /// Whether the source is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
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
}

impl std::fmt::Debug for dyn ByteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.location())
    }
}
