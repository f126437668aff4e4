//! Where a worker reads a resource's bytes from, chosen by its URL.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::error::{Result, StoreError};
use crate::object_source::ObjectStoreSource;
use crate::store::{StoreConfig, azure_builder, gcs_builder, s3_builder};
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

    fn open_from(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        let mut file = self.open_file()?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|cause| StoreError::io(&self.path, cause))?;
        Ok(Box::new(file))
    }
}

/// The source for a resource URL: `file:`, `http:` or `https:`, or a direct `s3://`, `gs://` or
/// `az://` URL read with the credentials in `config`.
pub fn open_url(url: &str, config: &StoreConfig) -> Result<Arc<dyn ByteSource>> {
    if url.starts_with("file:") {
        return Ok(Arc::new(LocalFileSource::from_url(url)?));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Arc::new(crate::http::HttpSource::new(url)));
    }
    let unsupported = |reason: &str| StoreError::UnsupportedUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        unsupported("not a URL; expected file:, http(s)://, s3://, gs:// or az://")
    })?;
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
        .ok_or_else(|| {
            unsupported("a direct URL names a bucket and an object: SCHEME://BUCKET/KEY")
        })?;
    let build_error = |cause: object_store::Error| StoreError::ObjectStore {
        store: format!("{scheme}://{bucket}"),
        operation: "connect to",
        object: String::new(),
        cause: Box::new(cause),
    };
    let objects: Arc<dyn ObjectStore> = match scheme {
        "s3" => Arc::new(
            s3_builder(config, bucket, None)
                .build()
                .map_err(build_error)?,
        ),
        "gs" => Arc::new(gcs_builder(config, bucket).build().map_err(build_error)?),
        "az" => Arc::new(azure_builder(config, bucket).build().map_err(build_error)?),
        other => {
            return Err(unsupported(&format!(
                "the {other:?} scheme is not supported; use file:, http(s)://, s3://, gs:// or az://"
            )));
        }
    };
    Ok(Arc::new(ObjectStoreSource::new(
        objects,
        ObjectPath::from(key),
        url.to_owned(),
    )?))
}
