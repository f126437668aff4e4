//! A job store: where a leader puts resources and where workers find them.
//!
//! Every backend goes through [`object_store`], so local disk, memory, S3, GCS and Azure share one
//! code path: a streaming, atomic upload of the resource under its shared name (the path hash),
//! its content hash kept with it, and a URL for workers. GCS objects alone are written through
//! the JSON API instead (see the private module `gcs_json`), and read through `object_store`
//! like the rest.
//!
//! An object shorter than one multipart part is stored with one `PUT` (atomic, and hashed on the
//! way like any other). Where the store keeps object metadata (the cloud stores, memory), such an
//! object carries its content hash and kind in it, so that a create costs a `HEAD` and a `PUT`, and
//! an identical re-create the `HEAD` alone. Objects uploaded in parts, whose hash is known only
//! once they are written, and every object of a directory store, have a small record file beside
//! them instead.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use bytes::{Bytes, BytesMut};
use http::Method;
use object_store::gcp::GoogleConfigKey;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutOptions, PutPayload, WriteMultipart,
};
use resource_core::hash::{ContentHasher, HashError};
use resource_core::{ContentHash, ResourceKind};

use crate::config::{StoreConfig, azure_builder, gcs_builder, s3_builder};
use crate::error::{Result, StoreError, object_store_error};
use crate::gcs_json::{GcsJsonError, GcsJsonWriter};
use crate::locator::StoreLocator;
use crate::source::ByteSource;
use crate::source::object::ObjectStoreSource;
use crate::url::file_url;

/// Bytes handed from the producer thread to the hashing thread at a time.
const CHUNK_LEN: usize = 1 << 20;
/// Chunks in flight between pipeline stages; bounds memory to a few MiB per stage.
const CHANNEL_DEPTH: usize = 4;
/// Multipart part size: the S3 minimum, so every backend accepts it.
const PART_LEN: usize = 5 << 20;
/// Parts uploaded concurrently.
const PART_CONCURRENCY: usize = 2;
/// The object metadata that carries a resource's content hash, where the store has metadata.
/// Letters only: Azure takes metadata names that are C# identifiers, and some proxies drop headers
/// with underscores.
const HASH_METADATA: &str = "resourcecontenthash";
/// The object metadata that carries a resource's kind (`file`, `dir` or `venv`).
const KIND_METADATA: &str = "resourcekind";

/// Where shared files live inside a directory store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedLayout {
    /// `<store>/shared/<name>`: a store directory made by this tool, and Toil 9's `FileJobStore`.
    Shared,
    /// `<store>/files/shared/<name>`: a `FileJobStore` initialised by an older Toil.
    ToilFileJobStore,
}

impl SharedLayout {
    fn prefix(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::ToilFileJobStore => "files/shared",
        }
    }

    /// The layout of an existing directory: the older Toil layout where it exists, else the one
    /// Toil 9 and this tool share.
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
    signer: Option<Arc<dyn Signer>>,
    shown_as: String,
    shared_prefix: ObjectPath,
    local_shared_dir: Option<PathBuf>,
    direct_scheme: Option<(&'static str, String)>,
    /// Whether objects carry metadata of ours (not on a directory store).
    has_metadata: bool,
    /// For a GCS store, what writes its objects (through the JSON API; see [`crate::gcs_json`]).
    gcs_json: Option<GcsJsonWriter>,
    config: StoreConfig,
}

impl JobStore {
    /// Opens (and for a directory, creates) the store at `locator` with the default
    /// configuration.
    pub fn open(locator: &StoreLocator) -> Result<Self> {
        Self::open_with(locator, &StoreConfig::default())
    }

    /// Opens the store at `locator`; cloud stores are configured from `config`.
    pub fn open_with(locator: &StoreLocator, config: &StoreConfig) -> Result<Self> {
        let build_error = || object_store_error(locator.to_string(), "connect to", String::new());
        let cloud = |objects: Arc<dyn ObjectStore>,
                     signer: Arc<dyn Signer>,
                     bucket: &str,
                     prefix: &str|
         -> Result<Self> {
            config.check_ttl()?;
            let scheme = locator.scheme().unwrap_or("s3");
            Ok(Self {
                objects,
                signer: Some(signer),
                shown_as: locator.to_string(),
                shared_prefix: ObjectPath::from(prefix),
                local_shared_dir: None,
                direct_scheme: Some((scheme, bucket.to_owned())),
                has_metadata: true,
                gcs_json: None,
                config: config.clone(),
            })
        };
        match locator {
            StoreLocator::Directory(dir) => Self::open_directory(dir, config),
            StoreLocator::Memory => Ok(Self {
                objects: Arc::new(InMemory::new()),
                signer: None,
                shown_as: "memory://".into(),
                shared_prefix: ObjectPath::from("shared"),
                local_shared_dir: None,
                direct_scheme: None,
                has_metadata: true,
                gcs_json: None,
                config: config.clone(),
            }),
            StoreLocator::S3 {
                bucket,
                shared_prefix,
                region,
            } => {
                let s3 = Arc::new(
                    s3_builder(config, bucket, region.as_deref())
                        .build()
                        .map_err(build_error())?,
                );
                cloud(s3.clone(), s3, bucket, shared_prefix)
            }
            StoreLocator::Gcs {
                bucket,
                shared_prefix,
            } => {
                let builder = gcs_builder(config, bucket);
                let anonymous = builder
                    .get_config_value(&GoogleConfigKey::SkipSignature)
                    .is_some_and(|skip| skip == "true");
                let base_url = builder.get_config_value(&GoogleConfigKey::BaseUrl);
                let gcs = Arc::new(builder.build().map_err(build_error())?);
                let writer =
                    GcsJsonWriter::new(Arc::clone(&gcs), bucket, base_url.as_deref(), anonymous)
                        .map_err(|cause| {
                            build_error()(object_store::Error::Generic {
                                store: "GCS",
                                source: Box::new(cause),
                            })
                        })?;
                Ok(Self {
                    gcs_json: Some(writer),
                    ..cloud(gcs.clone(), gcs, bucket, shared_prefix)?
                })
            }
            StoreLocator::Azure {
                container,
                shared_prefix,
            } => {
                let azure = Arc::new(
                    azure_builder(config, container)
                        .build()
                        .map_err(build_error())?,
                );
                cloud(azure.clone(), azure, container, shared_prefix)
            }
        }
    }

    fn open_directory(dir: &Path, config: &StoreConfig) -> Result<Self> {
        let layout = SharedLayout::detect(dir);
        let shared_dir = dir.join(layout.prefix());
        std::fs::create_dir_all(&shared_dir).map_err(|cause| StoreError::io(&shared_dir, cause))?;
        let objects = LocalFileSystem::new_with_prefix(dir).map_err(object_store_error(
            dir.display().to_string(),
            "open",
            String::new(),
        ))?;
        Ok(Self {
            objects: Arc::new(objects),
            signer: None,
            shown_as: dir.display().to_string(),
            shared_prefix: ObjectPath::from(layout.prefix()),
            local_shared_dir: Some(shared_dir),
            direct_scheme: None,
            // The local file system keeps no metadata: a record file beside each object.
            has_metadata: false,
            gcs_json: None,
            config: config.clone(),
        })
    }

    /// The store as shown to users.
    pub fn shown_as(&self) -> &str {
        &self.shown_as
    }

    /// The object holding a shared file.
    pub fn shared_object(&self, name: &str) -> ObjectPath {
        if self.shared_prefix.as_ref().is_empty() {
            ObjectPath::from(name)
        } else {
            self.shared_prefix.clone().join(name)
        }
    }

    fn record_object(&self, name: &str) -> ObjectPath {
        self.shared_object(&format!("{name}.resource.json"))
    }

    fn store_error(
        &self,
        operation: &'static str,
        object: &ObjectPath,
    ) -> impl FnOnce(object_store::Error) -> StoreError {
        object_store_error(self.shown_as.clone(), operation, object.to_string())
    }

    /// The URL a worker fetches a shared file from: `file:/abs/path` for a directory store, a
    /// presigned `https` URL valid for the configured time for a cloud store (never a public
    /// one), or a direct `s3://`/`gs://`/`az://` URL when so configured.
    pub async fn url_for(&self, name: &str) -> Result<String> {
        if let Some(dir) = &self.local_shared_dir {
            return Ok(file_url(&dir.join(name)));
        }
        let object = self.shared_object(name);
        if let (Some((scheme, bucket)), true) = (&self.direct_scheme, self.config.direct_urls) {
            return Ok(format!("{scheme}://{bucket}/{object}"));
        }
        match &self.signer {
            Some(signer) => {
                let url = signer
                    .signed_url(Method::GET, &object, self.config.url_ttl)
                    .await
                    .map_err(self.store_error("sign a URL for", &object))?;
                Ok(url.to_string())
            }
            None => Ok(format!("memory:///{object}")),
        }
    }

    /// A source that reads a shared file through this store's own client (workers with
    /// credentials, and in-process tests).
    pub fn source(&self, name: &str) -> Result<Arc<dyn ByteSource>> {
        let object = self.shared_object(name);
        let location = self.object_location(&object);
        Ok(Arc::new(ObjectStoreSource::new(
            Arc::clone(&self.objects),
            object,
            location,
        )?))
    }

    /// An object of this store as shown to users: the store, then the object's name.
    fn object_location(&self, object: &ObjectPath) -> String {
        format!("{}/{}", self.shown_as.trim_end_matches('/'), object)
    }

    /// The underlying object store, for tests and tools.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// The recorded content hash of the shared file `name`, if the store holds it and the record
    /// still describes the object: its own metadata where it has some (one `HEAD`), else the
    /// record file beside it, if its entity tag and size match.
    pub async fn recorded(&self, name: &str) -> Result<Option<StoredRecord>> {
        let object_path = self.shared_object(name);
        let mut meta = None;
        if self.has_metadata {
            let head = GetOptions {
                head: true,
                ..GetOptions::default()
            };
            match self.objects.get_opts(&object_path, head).await {
                Ok(result) => {
                    if let Some(record) = record_in_metadata(&result.attributes, &result.meta) {
                        return Ok(Some(record));
                    }
                    meta = Some(result.meta);
                }
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(source) => return Err(self.store_error("inspect", &object_path)(source)),
            }
        }
        let record_path = self.record_object(name);
        // The record and the object's metadata are asked for at once: one round trip.
        let head = async {
            match meta {
                Some(meta) => Ok(meta),
                None => self.objects.head(&object_path).await,
            }
        };
        let (record, meta) = futures::join!(self.objects.get(&record_path), head);
        let record = match record {
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
        let meta = match meta {
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
    /// runtime, so reading, hashing and writing overlap. What ends before one part is filled is
    /// stored with one `PUT`, with its hash in its metadata where the store has it. The object
    /// appears under its name only when everything succeeded; on any failure the upload is aborted
    /// and nothing is left under the name.
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

        // The first part's worth decides: a stream that ends before it is one `PUT`.
        let mut first = Vec::new();
        let mut first_len = 0;
        let mut ended = true;
        while let Some(chunk) = upload_rx.recv().await {
            first_len += chunk.len();
            first.push(chunk);
            if first_len >= PART_LEN {
                ended = false;
                break;
            }
        }
        if ended {
            let (value, (content_hash, size)) = join_stages(producer, hasher).await?;
            return self
                .put_whole(name, kind, first, value, content_hash, size)
                .await;
        }

        if let Some(gcs_json) = &self.gcs_json {
            return self
                .upload_resumable(gcs_json, name, kind, first, upload_rx, (producer, hasher))
                .await;
        }
        let upload = self
            .objects
            .put_multipart(&object_path)
            .await
            .map_err(self.store_error("start upload of", &object_path))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_LEN);
        let mut upload_failure = None;
        for chunk in first {
            writer.put(chunk);
        }
        while let Some(chunk) = upload_rx.recv().await {
            if let Err(source) = writer.wait_for_capacity(PART_CONCURRENCY).await {
                upload_failure = Some(source);
                break;
            }
            writer.put(chunk);
        }
        // Closing the receiver makes the hashing thread, and through it the producer, stop early.
        drop(upload_rx);
        let joined = join_stages(producer, hasher).await;
        if let Some(source) = upload_failure {
            // The abort's own failure adds nothing useful to the first error.
            let _ = writer.abort().await;
            return Err(self.store_error("upload", &object_path)(source));
        }
        let (value, (content_hash, size)) = match joined {
            Ok(joined) => joined,
            Err(error) => {
                let _ = writer.abort().await;
                return Err(error);
            }
        };
        let put = writer
            .finish()
            .await
            .map_err(self.store_error("finish upload of", &object_path))?;
        let record = StoredRecord {
            kind: kind.short_name().into(),
            content_hash,
            size,
            e_tag: put.e_tag,
        };
        self.finish_upload(name, record, value, true).await
    }

    /// The rest of [`upload`](Self::upload) for a GCS store, whose objects are written through
    /// the JSON API: `first` and what follows it go up in a resumable session, cancelled on any
    /// failure.
    async fn upload_resumable<T>(
        &self,
        gcs_json: &GcsJsonWriter,
        name: &str,
        kind: ResourceKind,
        first: Vec<Bytes>,
        mut upload_rx: tokio::sync::mpsc::Receiver<Bytes>,
        (producer, hasher): Stages<T>,
    ) -> Result<Uploaded<T>> {
        let object_path = self.shared_object(name);
        let gcs_error = |operation| {
            let error = self.store_error(operation, &object_path);
            move |cause: GcsJsonError| error(cause.into())
        };
        let mut upload = gcs_json
            .start(&object_path)
            .await
            .map_err(gcs_error("start upload of"))?;
        let mut upload_failure = None;
        let mut chunks = first.into_iter();
        loop {
            let chunk = match chunks.next() {
                Some(chunk) => chunk,
                None => match upload_rx.recv().await {
                    Some(chunk) => chunk,
                    None => break,
                },
            };
            if let Err(cause) = upload.put(chunk).await {
                upload_failure = Some(cause);
                break;
            }
        }
        // Closing the receiver makes the hashing thread, and through it the producer, stop early.
        drop(upload_rx);
        let joined = join_stages(producer, hasher).await;
        if let Some(cause) = upload_failure {
            upload.abort().await;
            return Err(gcs_error("upload")(cause));
        }
        let (value, (content_hash, size)) = match joined {
            Ok(joined) => joined,
            Err(error) => {
                upload.abort().await;
                return Err(error);
            }
        };
        upload
            .finish()
            .await
            .map_err(gcs_error("finish upload of"))?;
        // The record holds the entity tag that reads see (the XML API's), which the JSON API's
        // answer does not give.
        let meta = self
            .objects
            .head(&object_path)
            .await
            .map_err(self.store_error("inspect", &object_path))?;
        let record = StoredRecord {
            kind: kind.short_name().into(),
            content_hash,
            size,
            e_tag: meta.e_tag,
        };
        self.finish_upload(name, record, value, true).await
    }

    /// Stores `chunks`, the whole object, with one `PUT`: with its hash and kind in its metadata
    /// where the store has metadata, else followed by its record file.
    async fn put_whole<T>(
        &self,
        name: &str,
        kind: ResourceKind,
        chunks: Vec<Bytes>,
        value: T,
        content_hash: ContentHash,
        size: u64,
    ) -> Result<Uploaded<T>> {
        let object_path = self.shared_object(name);
        let attributes = if self.has_metadata {
            Attributes::from_iter([
                (
                    Attribute::Metadata(HASH_METADATA.into()),
                    AttributeValue::from(content_hash.to_string()),
                ),
                (
                    Attribute::Metadata(KIND_METADATA.into()),
                    AttributeValue::from(kind.short_name()),
                ),
            ])
        } else {
            Attributes::new()
        };
        let e_tag = if let Some(gcs_json) = &self.gcs_json {
            let metadata = [
                (HASH_METADATA, content_hash.to_string()),
                (KIND_METADATA, kind.short_name().to_owned()),
            ];
            gcs_json
                .put_whole(&object_path, chunks, &content_hash, &metadata)
                .await
                .map_err(|cause| self.store_error("upload", &object_path)(cause.into()))?;
            // Its metadata holds its hash: no record, so no entity tag is needed.
            None
        } else {
            let options = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            let put = self
                .objects
                .put_opts(&object_path, PutPayload::from_iter(chunks), options)
                .await
                .map_err(self.store_error("upload", &object_path))?;
            put.e_tag
        };
        let record = StoredRecord {
            kind: kind.short_name().into(),
            content_hash,
            size,
            e_tag,
        };
        self.finish_upload(name, record, value, !self.has_metadata)
            .await
    }

    /// What an upload of `name` returns, after writing its record file when `write_record` (where
    /// the object's own metadata cannot carry its hash).
    async fn finish_upload<T>(
        &self,
        name: &str,
        record: StoredRecord,
        value: T,
        write_record: bool,
    ) -> Result<Uploaded<T>> {
        if write_record {
            self.write_record(name, &record).await?;
        }
        Ok(Uploaded {
            value,
            content_hash: record.content_hash,
            size: record.size,
            e_tag: record.e_tag,
        })
    }

    async fn write_record(&self, name: &str, record: &StoredRecord) -> Result<()> {
        let record_path = self.record_object(name);
        let json = serde_json::to_vec(record).map_err(|cause| StoreError::RecordJson {
            record: self.object_location(&record_path),
            cause,
        })?;
        if let Some(gcs_json) = &self.gcs_json {
            let content_hash = ContentHash::of_bytes(&json);
            return gcs_json
                .put_whole(&record_path, vec![Bytes::from(json)], &content_hash, &[])
                .await
                .map_err(|cause| self.store_error("write", &record_path)(cause.into()));
        }
        self.objects
            .put(&record_path, PutPayload::from(json))
            .await
            .map_err(self.store_error("write", &record_path))?;
        Ok(())
    }
}

/// The record that an object's metadata holds, if it holds one of ours.
fn record_in_metadata(attributes: &Attributes, meta: &ObjectMeta) -> Option<StoredRecord> {
    let value = |key: &'static str| attributes.get(&Attribute::Metadata(key.into()));
    let content_hash = value(HASH_METADATA)?.as_ref().parse().ok()?;
    let kind = value(KIND_METADATA)?.as_ref().to_owned();
    Some(StoredRecord {
        kind,
        content_hash,
        size: meta.size,
        e_tag: meta.e_tag.clone(),
    })
}

/// The producer and the hasher of an upload stream.
type Stages<T> = (
    tokio::task::JoinHandle<Result<T>>,
    tokio::task::JoinHandle<Result<(ContentHash, u64)>>,
);

/// Waits for the producer and the hasher of a stream that has ended: what the producer returned,
/// and the hash and size of what it wrote.
async fn join_stages<T>(
    producer: tokio::task::JoinHandle<Result<T>>,
    hasher: tokio::task::JoinHandle<Result<(ContentHash, u64)>>,
) -> Result<(T, (ContentHash, u64))> {
    let produced = producer
        .await
        .map_err(|cause| StoreError::TaskFailed {
            task: "produce the upload stream",
            cause,
        })
        .and_then(|result| result);
    let hashed = hasher
        .await
        .map_err(|cause| StoreError::TaskFailed {
            task: "hash the upload stream",
            cause,
        })
        .and_then(|result| result);
    match (produced, hashed) {
        (Ok(value), Ok(hashed)) => Ok((value, hashed)),
        // A hashing failure makes the producer fail too, with a bare broken pipe, so the
        // hasher's error comes first; a producer failure leaves the hasher's result `Ok`.
        (_, Err(error)) | (Err(error), _) => Err(error),
    }
}

/// Forwards chunks from the producer to the uploader, hashing them on the way. Returns early,
/// without error, when the uploader stops listening; the uploader reports why.
fn hash_and_forward(
    chunks: Receiver<Bytes>,
    upload: tokio::sync::mpsc::Sender<Bytes>,
) -> Result<(ContentHash, u64)> {
    let hash_error = |error: HashError| StoreError::io("<upload stream>", error.into());
    let mut hasher = ContentHasher::new();
    for chunk in chunks {
        // Dropping `chunks` on an error stops the producer, and dropping `upload` ends the upload
        // loop, which then aborts the upload and reports this error.
        hasher.update(&chunk).map_err(hash_error)?;
        if upload.blocking_send(chunk).is_err() {
            break;
        }
    }
    let size = hasher.bytes_hashed();
    Ok((hasher.finish().map_err(hash_error)?, size))
}

/// A `Write` that batches bytes into chunks and sends them down a channel.
///
/// It keeps a handle on the chunks it sent and reuses a chunk's memory once the hasher and the
/// uploader have both dropped theirs: a fresh 1 MiB allocation per chunk costs 256 page faults,
/// which add up to a tenth of the time of a small create.
struct ChunkWriter {
    buffer: BytesMut,
    sender: SyncSender<Bytes>,
    sent: VecDeque<Bytes>,
}

/// Sent chunks tracked for reuse; more than the pipeline holds at once (two channels and the
/// parts being uploaded), so that the oldest is usually free again when a new buffer is needed.
const REUSE_DEPTH: usize = 2 * CHANNEL_DEPTH + (PART_CONCURRENCY + 1) * PART_LEN / CHUNK_LEN;

impl ChunkWriter {
    fn new(sender: SyncSender<Bytes>) -> Self {
        Self {
            buffer: BytesMut::with_capacity(CHUNK_LEN),
            sender,
            sent: VecDeque::with_capacity(REUSE_DEPTH),
        }
    }

    /// An empty buffer: the oldest sent chunk's memory when nobody else holds it any more.
    fn next_buffer(&mut self) -> BytesMut {
        if let Some(oldest) = self.sent.pop_front() {
            match oldest.try_into_mut() {
                Ok(mut reused) if reused.capacity() >= CHUNK_LEN => {
                    reused.clear();
                    return reused;
                }
                Ok(_) => {}
                // Still in the pipeline: keep tracking it unless the queue is full.
                Err(oldest) if self.sent.len() + 1 < REUSE_DEPTH => self.sent.push_front(oldest),
                Err(_) => {}
            }
        }
        BytesMut::with_capacity(CHUNK_LEN)
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let fresh = self.next_buffer();
        let chunk = std::mem::replace(&mut self.buffer, fresh).freeze();
        self.sent.push_back(chunk.clone());
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
