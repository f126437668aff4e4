//! Where a worker reads a resource's bytes from, chosen by its URL.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::error::{Result, StoreError};
use crate::url::file_url_path;

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
    /// A stream of all the bytes from the start.
    fn open(&self) -> Result<Box<dyn Read + Send>>;
}

/// A local file, reached through a `file:` URL.
#[derive(Debug, Clone)]
pub struct LocalFileSource {
    url: String,
    path: PathBuf,
}

impl LocalFileSource {
    /// The source behind a `file:` URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let path = file_url_path(url).ok_or_else(|| StoreError::UnsupportedUrl {
            url: url.to_owned(),
            reason: "not a local file: URL".into(),
        })?;
        Ok(Self {
            url: url.to_owned(),
            path,
        })
    }

    fn open_file(&self) -> Result<std::fs::File> {
        std::fs::File::open(&self.path).map_err(|source| StoreError::io(&self.path, source))
    }
}

impl ByteSource for LocalFileSource {
    fn location(&self) -> &str {
        &self.url
    }

    fn len(&self) -> Result<u64> {
        Ok(std::fs::metadata(&self.path)
            .map_err(|source| StoreError::io(&self.path, source))?
            .len())
    }

    fn read_tail(&self, len: u64) -> Result<Vec<u8>> {
        let mut file = self.open_file()?;
        let total = file
            .metadata()
            .map_err(|source| StoreError::io(&self.path, source))?
            .len();
        let start = total.saturating_sub(len);
        file.seek(SeekFrom::Start(start))
            .map_err(|source| StoreError::io(&self.path, source))?;
        let mut tail = Vec::new();
        file.take(len)
            .read_to_end(&mut tail)
            .map_err(|source| StoreError::io(&self.path, source))?;
        Ok(tail)
    }

    fn open(&self) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.open_file()?))
    }
}

/// The source for a resource URL. This build reads `file:` URLs.
pub fn open_url(url: &str) -> Result<Box<dyn ByteSource>> {
    if url.starts_with("file:") {
        return Ok(Box::new(LocalFileSource::from_url(url)?));
    }
    let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
    Err(StoreError::UnsupportedUrl {
        url: url.to_owned(),
        reason: format!("the {scheme:?} scheme is not supported by this build; use a file: URL"),
    })
}
