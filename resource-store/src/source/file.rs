//! A resource in a local file, reached through a `file:` URL.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::error::{Result, StoreError};
use crate::source::{ByteSource, Opening};
use crate::url::file_url_path;

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

    fn open_start(&self, _want: u64) -> Result<Opening> {
        // A local file is read whole from the start: no request to save.
        let file = self.open_file()?;
        let len = file
            .metadata()
            .map_err(|source| StoreError::io(&self.path, source))?
            .len();
        Ok(Opening {
            len,
            body: Box::new(file),
            body_len: len,
            ranged: true,
        })
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

    fn open_from(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        let mut file = self.open_file()?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|cause| StoreError::io(&self.path, cause))?;
        Ok(Box::new(file))
    }
}
