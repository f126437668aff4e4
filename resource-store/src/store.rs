//! A job store: where a leader puts resources and where workers find them.
//!
//! Every backend goes through [`object_store`], so local disk, memory and (later) S3, GCS and Azure
//! share one code path: a streaming, atomic upload of the resource under its shared name (the path
//! hash), a small record of its content hash beside it, and a URL for workers.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use bytes::{Bytes, BytesMut};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use resource_core::hash::ContentHasher;
use resource_core::{ContentHash, ResourceKind};

use crate::error::{Result, StoreError};
use crate::locator::StoreLocator;
use crate::url::file_url;

/// Bytes handed from the producer thread to the hashing thread at a time.
const CHUNK_LEN: usize = 1 << 20;
/// Chunks in flight between pipeline stages; bounds memory to a few MiB per stage.
const CHANNEL_DEPTH: usize = 4;
/// Multipart part size: the S3 minimum, so every backend accepts it.
const PART_LEN: usize = 5 << 20;
/// Parts uploaded concurrently.
const PART_CONCURRENCY: usize = 2;

/// Where shared files live inside a directory store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedLayout {
    /// `<store>/shared/<name>`: a store directory made by this tool.
    Shared,
    /// `<store>/files/shared/<name>`: a directory initialised by Toil as a `FileJobStore`.
    ToilFileJobStore,
}

impl SharedLayout {
    fn prefix(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::ToilFileJobStore => "files/shared",
        }
    }

    /// The layout of an existing directory: Toil's if Toil initialised it, else ours.
    pub fn detect(store_dir: &Path) -> Self {
        if store_dir.join("files").join("shared").is_dir() {
            Self::ToilFileJobStore
        } else {
            Self::Shared
        }
    }
}

/// What the store recorded about a resource it holds, used to skip identical uploads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRecord {
    /// The kind of resource stored.
    pub kind: String,
    /// The MD5 of the stored bytes.
    pub content_hash: ContentHash,
    /// The size of the stored object.
    pub size: u64,
    /// The object's entity tag when the record was written, if the backend has them.
    pub e_tag: Option<String>,
}

/// The result of a streaming upload.
#[derive(Debug)]
pub struct Uploaded<T> {
    /// What the producer returned.
    pub value: T,
    /// The MD5 of everything uploaded.
    pub content_hash: ContentHash,
    /// How many bytes were uploaded.
    pub size: u64,
    /// The entity tag of the new object, if the backend gives one.
    pub e_tag: Option<String>,
}

/// A job store over `object_store`.
#[derive(Debug, Clone)]
pub struct JobStore {
    objects: Arc<dyn ObjectStore>,
    shown_as: String,
    shared_prefix: ObjectPath,
    local_shared_dir: Option<PathBuf>,
}

impl JobStore {
    /// Opens (and for a directory, creates) the store at `locator`.
    pub fn open(locator: &StoreLocator) -> Result<Self> {
        match locator {
            StoreLocator::Directory(dir) => Self::open_directory(dir),
            StoreLocator::Memory => Ok(Self {
                objects: Arc::new(InMemory::new()),
                shown_as: "memory://".into(),
                shared_prefix: ObjectPath::from("shared"),
                local_shared_dir: None,
            }),
        }
    }

    fn open_directory(dir: &Path) -> Result<Self> {
        let layout = SharedLayout::detect(dir);
        let shared_dir = dir.join(layout.prefix());
        std::fs::create_dir_all(&shared_dir)
            .map_err(|source| StoreError::io(&shared_dir, source))?;
        let objects =
            LocalFileSystem::new_with_prefix(dir).map_err(|cause| StoreError::ObjectStore {
                store: dir.display().to_string(),
                operation: "open",
                object: String::new(),
                cause,
            })?;
        Ok(Self {
            objects: Arc::new(objects),
            shown_as: dir.display().to_string(),
            shared_prefix: ObjectPath::from(layout.prefix()),
            local_shared_dir: Some(shared_dir),
        })
    }

    /// The store as shown to users.
    pub fn shown_as(&self) -> &str {
        &self.shown_as
    }

    /// The object holding a shared file.
    pub fn shared_object(&self, name: &str) -> ObjectPath {
        self.shared_prefix.clone().join(name)
    }

    fn record_object(&self, name: &str) -> ObjectPath {
        self.shared_object(&format!("{name}.resource.json"))
    }

    fn store_error(
        &self,
        operation: &'static str,
        object: &ObjectPath,
    ) -> impl FnOnce(object_store::Error) -> StoreError {
        let store = self.shown_as.clone();
        let object = object.to_string();
        move |cause| StoreError::ObjectStore {
            store,
            operation,
            object,
            cause,
        }
    }

    /// The URL a worker fetches a shared file from: `file:/abs/path` for a directory store.
    pub fn url_for(&self, name: &str) -> Result<String> {
        match &self.local_shared_dir {
            Some(dir) => Ok(file_url(&dir.join(name))),
            None => Ok(format!("{}{}", self.shown_as, self.shared_object(name))),
        }
    }

    /// The underlying object store, for workers that fetch with credentials and for tests.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// The recorded content hash of the shared file `name`, if the store holds it and the record
    /// still describes the object (its entity tag and size match).
    pub async fn recorded(&self, name: &str) -> Result<Option<StoredRecord>> {
        let record_path = self.record_object(name);
        let record = match self.objects.get(&record_path).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(self.store_error("read", &record_path))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(self.store_error("read", &record_path)(source)),
        };
        // A record that cannot be parsed is treated as absent: the upload then rewrites it.
        let Ok(record) = serde_json::from_slice::<StoredRecord>(&record) else {
            return Ok(None);
        };
        let object_path = self.shared_object(name);
        let meta = match self.objects.head(&object_path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(self.store_error("inspect", &object_path)(source)),
        };
        let same =
            meta.size == record.size && (record.e_tag.is_none() || meta.e_tag == record.e_tag);
        Ok(same.then_some(record))
    }

    /// Streams what `produce` writes into the shared file `name`, hashing it on the way, and
    /// records its content hash beside it.
    ///
    /// `produce` runs on a blocking thread, MD5 on a second one, and the upload on the async
    /// runtime, so reading, hashing and writing overlap. The object appears under its name only
    /// when everything succeeded; on any failure the upload is aborted and nothing is left under
    /// the name.
    pub async fn upload<T, F>(
        &self,
        name: &str,
        kind: ResourceKind,
        produce: F,
    ) -> Result<Uploaded<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Write) -> Result<T> + Send + 'static,
    {
        let object_path = self.shared_object(name);
        let (chunk_tx, chunk_rx) = sync_channel::<Bytes>(CHANNEL_DEPTH);
        let (upload_tx, mut upload_rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_DEPTH);

        let producer = tokio::task::spawn_blocking(move || {
            let mut writer = ChunkWriter::new(chunk_tx);
            let value = produce(&mut writer)?;
            writer
                .finish()
                .map_err(|source| StoreError::io("<upload stream>", source))?;
            Ok::<T, StoreError>(value)
        });
        let hasher = tokio::task::spawn_blocking(move || hash_and_forward(chunk_rx, upload_tx));

        let upload = self
            .objects
            .put_multipart(&object_path)
            .await
            .map_err(self.store_error("start upload of", &object_path))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_LEN);
        let mut upload_failure = None;
        while let Some(chunk) = upload_rx.recv().await {
            if let Err(source) = writer.wait_for_capacity(PART_CONCURRENCY).await {
                upload_failure = Some(source);
                break;
            }
            writer.put(chunk);
        }
        // Closing the receiver makes the hashing thread, and through it the producer, stop early.
        drop(upload_rx);
        let produced = producer
            .await
            .map_err(|error| StoreError::Task(error.to_string()))
            .and_then(|result| result);
        let hashed = hasher
            .await
            .map_err(|error| StoreError::Task(error.to_string()));

        if let Some(source) = upload_failure {
            // The abort's own failure adds nothing useful to the first error.
            let _ = writer.abort().await;
            return Err(self.store_error("upload", &object_path)(source));
        }
        let (value, (content_hash, size)) = match (produced, hashed) {
            (Ok(value), Ok(hashed)) => (value, hashed),
            (Err(error), _) | (_, Err(error)) => {
                let _ = writer.abort().await;
                return Err(error);
            }
        };
        let put = writer
            .finish()
            .await
            .map_err(self.store_error("finish upload of", &object_path))?;
        self.write_record(
            name,
            &StoredRecord {
                kind: kind.short_name().into(),
                content_hash: content_hash.clone(),
                size,
                e_tag: put.e_tag.clone(),
            },
        )
        .await?;
        Ok(Uploaded {
            value,
            content_hash,
            size,
            e_tag: put.e_tag,
        })
    }

    async fn write_record(&self, name: &str, record: &StoredRecord) -> Result<()> {
        let record_path = self.record_object(name);
        let json =
            serde_json::to_vec(record).map_err(|error| StoreError::Task(error.to_string()))?;
        self.objects
            .put(&record_path, PutPayload::from(json))
            .await
            .map_err(self.store_error("write", &record_path))?;
        Ok(())
    }
}

/// Forwards chunks from the producer to the uploader, hashing them on the way. Returns early,
/// without error, when the uploader stops listening; the uploader reports why.
fn hash_and_forward(
    chunks: Receiver<Bytes>,
    upload: tokio::sync::mpsc::Sender<Bytes>,
) -> (ContentHash, u64) {
    let mut hasher = ContentHasher::new();
    for chunk in chunks {
        hasher.update(&chunk);
        if upload.blocking_send(chunk).is_err() {
            break;
        }
    }
    let size = hasher.bytes_hashed();
    (hasher.finish(), size)
}

/// A `Write` that batches bytes into chunks and sends them down a channel.
struct ChunkWriter {
    buffer: BytesMut,
    sender: SyncSender<Bytes>,
}

impl ChunkWriter {
    fn new(sender: SyncSender<Bytes>) -> Self {
        Self {
            buffer: BytesMut::with_capacity(CHUNK_LEN),
            sender,
        }
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk =
            std::mem::replace(&mut self.buffer, BytesMut::with_capacity(CHUNK_LEN)).freeze();
        self.sender
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    fn finish(mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK_LEN - self.buffer.len();
        let taken = room.min(buf.len());
        self.buffer.extend_from_slice(&buf[..taken]);
        if self.buffer.len() >= CHUNK_LEN {
            self.send_buffer()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
