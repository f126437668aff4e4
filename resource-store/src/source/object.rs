//! Reading a shared file through an object store's own client: direct `s3://`, `gs://` and
//! `az://` URLs for workers with credentials, and the store's objects in tests.

use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::runtime::Runtime;

use crate::error::{Result, StoreError, object_store_error, object_stream_error};
use crate::source::{ByteSource, Opening};

/// A shared file in an object store, read with blocking calls on a small runtime of its own.
///
/// Its methods block: call them from a plain thread (or `spawn_blocking`), not from async code.
pub struct ObjectStoreSource {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    location: String,
    runtime: Arc<Runtime>,
    len: OnceLock<u64>,
}

impl std::fmt::Debug for ObjectStoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreSource")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreSource {
    /// A source for `path` in `store`, shown as `location` in messages.
    pub fn new(store: Arc<dyn ObjectStore>, path: ObjectPath, location: String) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("resource-object-source")
            .enable_all()
            .build()
            .map_err(|cause| StoreError::io(&location, cause))?;
        Ok(Self {
            store,
            path,
            location,
            runtime: Arc::new(runtime),
            len: OnceLock::new(),
        })
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(object_store::Error) -> StoreError {
        object_store_error(self.location.clone(), operation, String::new())
    }

    fn get(&self, range: Option<GetRange>) -> Result<object_store::GetResult> {
        let options = GetOptions {
            range,
            ..GetOptions::default()
        };
        self.runtime
            .block_on(self.store.get_opts(&self.path, options))
            .map_err(self.error("read"))
    }
}

impl ByteSource for ObjectStoreSource {
    fn location(&self) -> &str {
        &self.location
    }

    fn len(&self) -> Result<u64> {
        if let Some(len) = self.len.get() {
            return Ok(*len);
        }
        let meta = self
            .runtime
            .block_on(object_store::ObjectStoreExt::head(
                self.store.as_ref(),
                &self.path,
            ))
            .map_err(self.error("inspect"))?;
        Ok(*self.len.get_or_init(|| meta.size))
    }

    fn open_start(&self, want: u64) -> Result<Opening> {
        // No HEAD first: the ranged GET's answer gives the size (its `Content-Range`).
        let result = match self.get(Some(GetRange::Bounded(0..want.max(1)))) {
            Ok(result) => result,
            // An empty object has no first byte to give; only then is its size asked for.
            Err(error) => {
                return match self.len() {
                    Ok(0) => Ok(Opening::empty()),
                    _ => Err(error),
                };
            }
        };
        let len = result.meta.size;
        let _ = self.len.set(len);
        let body_len = result.range.end.saturating_sub(result.range.start);
        if result.range.start != 0 {
            return Err(StoreError::BrokenInvariant {
                location: self.location.clone(),
                invariant: "the answer to a first range starts at offset 0",
            });
        }
        Ok(Opening {
            len,
            body: self.blocking(result),
            body_len,
            ranged: true,
        })
    }

    fn read_tail(&self, len: u64) -> Result<Vec<u8>> {
        let size = self.len()?;
        if len == 0 || size == 0 {
            return Ok(Vec::new());
        }
        // A bounded range, not a suffix one: Azure Blob Storage has no suffix ranges (its client
        // refuses `GetRange::Suffix`), and the size is known already.
        let result = self.get(Some(GetRange::Bounded(size.saturating_sub(len)..size)))?;
        let bytes = self
            .runtime
            .block_on(result.bytes())
            .map_err(self.error("read"))?;
        Ok(bytes.to_vec())
    }

    fn open_from(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        self.stream((offset > 0).then_some(GetRange::Offset(offset)))
    }

    fn open_range(&self, offset: u64, len: u64) -> Result<Box<dyn Read + Send>> {
        self.stream(Some(GetRange::Bounded(offset..offset.saturating_add(len))))
    }

    fn gains_from_parallel_ranges(&self) -> bool {
        true
    }
}

impl ObjectStoreSource {
    /// The object's bytes in `range`, read with blocking calls.
    fn stream(&self, range: Option<GetRange>) -> Result<Box<dyn Read + Send>> {
        Ok(self.blocking(self.get(range)?))
    }

    /// The body of `result`, read with blocking calls.
    fn blocking(&self, result: object_store::GetResult) -> Box<dyn Read + Send> {
        Box::new(BlockingStream {
            stream: result.into_stream(),
            runtime: Arc::clone(&self.runtime),
            current: Bytes::new(),
            location: self.location.clone(),
        })
    }
}

/// A byte stream read with blocking calls.
struct BlockingStream {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    runtime: Arc<Runtime>,
    current: Bytes,
    location: String,
}

impl Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                // A failure mid-stream is a transfer error: the caller resumes from here.
                Some(Err(error)) => return Err(object_stream_error(&self.location, &error)),
            }
        }
        let taken = self.current.len().min(buf.len());
        buf[..taken].copy_from_slice(&self.current[..taken]);
        let _ = self.current.split_to(taken);
        Ok(taken)
    }
}
