//! The leader's side: turn a path into a stored, registered-ready resource.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use resource_archive::{PackOptions, PackPlan};
use resource_core::hash::HashingWriter;
use resource_core::{ContentHash, PathHash, Resource, ResourceKind};

use crate::error::{Result, StoreError};
use crate::progress::{Progress, ProgressWriter};
use crate::store::JobStore;

/// Buffer size for reading leader files: large reads keep syscalls off the MD5's critical path.
const READ_BUFFER_LEN: usize = 1 << 20;

/// How to publish a path.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// The kind to publish as; detected from the path when `None`.
    pub kind: Option<ResourceKind>,
    /// How directories and virtualenvs are packed. A virtualenv also carries the source trees of
    /// its editable installs ([`with_editable_sources`]), besides any extra trees given here.
    pub pack: PackOptions,
    /// Told how many bytes have been stored, as they are.
    pub progress: Option<Progress>,
}

/// What [`publish`] did.
#[derive(Debug, Clone)]
pub struct Published {
    /// The resource, ready to register.
    pub resource: Resource,
    /// Whether bytes were uploaded (`false` when the store already held identical content).
    pub uploaded: bool,
    /// The size of the stored object.
    pub stored_bytes: u64,
}

/// What [`dry_run`] found: the resource that `publish` would store, without storing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRun {
    /// The kind it would be published as.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
    /// The path hash.
    pub path_hash: PathHash,
    /// Regular files (1 for a file resource).
    pub files: u64,
    /// Directory entries.
    pub dirs: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// The size of what would be stored (the archive, or the file).
    pub stored_bytes: u64,
    /// The content hash of what would be stored.
    pub content_hash: ContentHash,
    /// The largest top-level entries (files, and directories with the bytes of the files below
    /// them), largest first, at most [`DRY_RUN_TOP`].
    pub largest_entries: Vec<SizedEntry>,
    /// The largest files, largest first, at most [`DRY_RUN_TOP`].
    pub largest_files: Vec<SizedEntry>,
}

/// How many of the largest entries and files a [`DryRun`] lists.
pub const DRY_RUN_TOP: usize = 10;

/// A name in the archive and the bytes of file content it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizedEntry {
    /// The entry's name in the archive (a directory's without its trailing `/`).
    pub name: String,
    /// Bytes of file content.
    pub bytes: u64,
}

/// The largest top-level entries and the largest files of a plan, [`DRY_RUN_TOP`] of each.
fn largest(plan: &resource_archive::PackPlan) -> (Vec<SizedEntry>, Vec<SizedEntry>) {
    let mut top_level: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    let mut files = Vec::new();
    for entry in plan.entries() {
        let name = entry.name().trim_end_matches('/');
        let top = name.split('/').next().unwrap_or(name);
        let bytes = match entry.kind() {
            resource_archive::PlanEntryKind::File { size } => *size,
            _ => 0,
        };
        *top_level.entry(top).or_default() += bytes;
        if let resource_archive::PlanEntryKind::File { size } = entry.kind() {
            files.push(SizedEntry {
                name: name.to_owned(),
                bytes: *size,
            });
        }
    }
    let mut entries: Vec<SizedEntry> = top_level
        .into_iter()
        .map(|(name, bytes)| SizedEntry {
            name: name.to_owned(),
            bytes,
        })
        .collect();
    for list in [&mut entries, &mut files] {
        // Largest first; equal sizes by name, so the listing is stable.
        list.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        list.truncate(DRY_RUN_TOP);
    }
    (entries, files)
}

/// The kind a leader path would be published as, checking it exists and is usable.
pub fn detect_kind(path: &Path, requested: Option<ResourceKind>) -> Result<ResourceKind> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(source) => return Err(StoreError::io(path, source)),
    };
    let mismatch = |kind: ResourceKind, reason: &str| StoreError::KindMismatch {
        path: path.to_path_buf(),
        kind: kind.short_name(),
        reason: reason.to_owned(),
    };
    match requested {
        None if meta.is_file() => Ok(ResourceKind::File),
        // A virtualenv's `site-packages` ships as Toil ships one, as a virtualenv resource.
        None if meta.is_dir() && path.file_name() == Some(OsStr::new("site-packages")) => {
            Ok(ResourceKind::VirtualEnv)
        }
        None if meta.is_dir() => Ok(ResourceKind::Directory),
        None => Err(StoreError::NotAFileOrDirectory {
            path: path.to_path_buf(),
            kind: "special file",
        }),
        Some(ResourceKind::File) if !meta.is_file() => {
            Err(mismatch(ResourceKind::File, "it is not a regular file"))
        }
        Some(kind) if kind.is_archive() && !meta.is_dir() => {
            Err(mismatch(kind, "it is not a directory"))
        }
        Some(kind) => Ok(kind),
    }
}

/// The resource name of a leader path: its base name, like Toil's `os.path.basename`, but taken
/// from the resolved path when the path ends in `..` or a slash.
pub fn resource_name(path: &Path) -> Result<String> {
    let name = match path.file_name() {
        Some(name) => name.to_owned(),
        None => std::fs::canonicalize(path)
            .map_err(|source| StoreError::io(path, source))?
            .file_name()
            .map(ToOwned::to_owned)
            .ok_or_else(|| StoreError::UnsafeName {
                name: path.display().to_string(),
            })?,
    };
    name.into_string().map_err(|name| StoreError::UnsafeName {
        name: PathBuf::from(name).display().to_string(),
    })
}

/// The pack options of a virtualenv resource: `pack`, with the source trees of the editable
/// installs in `site_packages` added as extra trees, each where a normal install would put it, so
/// that they import on a worker (Toil's virtualenv resources lose them). [`publish`] and
/// [`dry_run`] pack every virtualenv with these.
pub fn with_editable_sources(site_packages: &Path, pack: &PackOptions) -> Result<PackOptions> {
    let mut pack = pack.clone();
    pack.extra_trees
        .extend(resource_modules::editable_extra_trees(site_packages)?);
    Ok(pack)
}

/// What a kind of resource streams into the store: a file's bytes, or a directory's archive.
enum Content {
    File(PathBuf),
    Archive(PackPlan),
}

impl Content {
    /// Walks and checks the path; every refusal happens here, before the store is touched.
    fn prepare(path: &Path, kind: ResourceKind, options: &PackOptions) -> Result<Self> {
        match kind {
            ResourceKind::File => Ok(Self::File(path.to_path_buf())),
            ResourceKind::VirtualEnv => {
                let options = with_editable_sources(path, options)?;
                Ok(Self::Archive(resource_archive::plan(path, kind, &options)?))
            }
            _ => Ok(Self::Archive(resource_archive::plan(path, kind, options)?)),
        }
    }

    fn write(&self, out: &mut dyn Write) -> Result<u64> {
        match self {
            Self::File(path) => copy_file(path, out),
            Self::Archive(plan) => Ok(plan.write(out)?.archive_len),
        }
    }

    /// The bytes of file content to stream: the file's size, or the planned files' sizes.
    fn input_bytes(&self) -> Result<u64> {
        match self {
            Self::File(path) => Ok(std::fs::metadata(path)
                .map_err(|source| StoreError::io(path, source))?
                .len()),
            Self::Archive(plan) => Ok(plan.file_bytes()),
        }
    }

    fn measure(&self) -> Result<(u64, ContentHash)> {
        let mut out = HashingWriter::new(std::io::sink());
        let len = self.write(&mut out)?;
        let (_, hash) = out
            .finish()
            .map_err(|error| StoreError::io("<dry run>", error.into()))?;
        Ok((len, hash))
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|cause| StoreError::TaskFailed {
            task: "publish",
            cause,
        })?
}

/// Stores the resource made from `leader_path` in `store` and returns it, ready to register.
///
/// Files are stored as they are; directories and virtualenvs as a deterministic zip archive, a
/// virtualenv with the source trees of its editable installs ([`with_editable_sources`]).
/// Everything is checked before the store is touched, the bytes are streamed in constant memory
/// and hashed on the way. When the store already holds the same content under the same path
/// hash, nothing is uploaded.
pub async fn publish(
    store: &JobStore,
    leader_path: &Path,
    options: &PublishOptions,
) -> Result<Published> {
    let kind = detect_kind(leader_path, options.kind)?;
    let name = resource_name(leader_path)?;
    let path_hash = PathHash::of_path(leader_path);
    let shared_name = path_hash.to_string();
    let url = store.url_for(&shared_name).await?;
    let path = leader_path.to_path_buf();
    let pack = options.pack.clone();
    let content = Arc::new(blocking(move || Content::prepare(&path, kind, &pack)).await?);
    let resource = |content_hash| Resource {
        kind,
        name: name.clone(),
        path_hash: path_hash.clone(),
        url: url.clone(),
        content_hash,
    };

    if let Some(record) = store.recorded(&shared_name).await? {
        let measured = Arc::clone(&content);
        let (size, content_hash) = blocking(move || measured.measure()).await?;
        if content_hash == record.content_hash && record.kind == kind.short_name() {
            return Ok(Published {
                resource: resource(content_hash),
                uploaded: false,
                stored_bytes: size,
            });
        }
    }
    let progress = options.progress.clone();
    if let Some(progress) = &progress {
        progress.set_total(content.input_bytes()?);
    }
    let uploaded = store
        .upload(&shared_name, kind, move |out| {
            content.write(&mut ProgressWriter {
                inner: out,
                progress: progress.as_ref(),
            })
        })
        .await?;
    Ok(Published {
        resource: resource(uploaded.content_hash),
        uploaded: true,
        stored_bytes: uploaded.size,
    })
}

/// What `publish` would store for `leader_path`, computed without a store: counts, sizes and the
/// content hash.
pub fn dry_run(leader_path: &Path, options: &PublishOptions) -> Result<DryRun> {
    let kind = detect_kind(leader_path, options.kind)?;
    let name = resource_name(leader_path)?;
    let content = Content::prepare(leader_path, kind, &options.pack)?;
    let (stored_bytes, content_hash) = content.measure()?;
    let (files, dirs, bytes) = match &content {
        Content::File(_) => (1, 0, stored_bytes),
        Content::Archive(plan) => (plan.file_count(), plan.dir_count(), plan.file_bytes()),
    };
    let (largest_entries, largest_files) = match &content {
        Content::File(_) => {
            let only = vec![SizedEntry {
                name: name.clone(),
                bytes: stored_bytes,
            }];
            (only.clone(), only)
        }
        Content::Archive(plan) => largest(plan),
    };
    Ok(DryRun {
        kind,
        name,
        path_hash: PathHash::of_path(leader_path),
        files,
        dirs,
        bytes,
        stored_bytes,
        content_hash,
        largest_entries,
        largest_files,
    })
}

/// What [`write_content`] streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The kind it was packed as.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
    /// The path hash.
    pub path_hash: PathHash,
    /// How many bytes were written.
    pub size: u64,
    /// The content hash of the bytes written.
    pub content_hash: ContentHash,
}

/// Streams what [`publish`] would store for `leader_path` into `out`, hashing it on the way, for
/// job stores that are not ours (a Python job store's write stream, say). Everything is checked
/// before the first byte is written.
pub fn write_content(
    leader_path: &Path,
    options: &PublishOptions,
    out: &mut dyn Write,
) -> Result<Written> {
    let kind = detect_kind(leader_path, options.kind)?;
    let name = resource_name(leader_path)?;
    let content = Content::prepare(leader_path, kind, &options.pack)?;
    let mut hashing = HashingWriter::new(out);
    let size = content.write(&mut hashing)?;
    let (out, content_hash) = hashing
        .finish()
        .map_err(|error| StoreError::io(leader_path, error.into()))?;
    out.flush()
        .map_err(|source| StoreError::io(leader_path, source))?;
    Ok(Written {
        kind,
        name,
        path_hash: PathHash::of_path(leader_path),
        size,
        content_hash,
    })
}

fn copy_file(path: &Path, out: &mut dyn Write) -> Result<u64> {
    let mut file = std::fs::File::open(path).map_err(|source| StoreError::io(path, source))?;
    let mut buffer = vec![0u8; READ_BUFFER_LEN];
    let mut total = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|source| StoreError::io(path, source))?;
        if read == 0 {
            return Ok(total);
        }
        out.write_all(&buffer[..read])
            .map_err(|source| StoreError::io(path, source))?;
        total += read as u64;
    }
}

/// Re-signs the URL of a resource from its store (for presigned URLs close to expiry), after
/// checking that the store still holds the same content under the resource's name.
pub async fn refresh(store: &JobStore, resource: &Resource) -> Result<Resource> {
    let name = resource.path_hash.to_string();
    match store.recorded(&name).await? {
        Some(record) if record.content_hash == resource.content_hash => Ok(Resource {
            url: store.url_for(&name).await?,
            ..resource.clone()
        }),
        Some(record) => Err(StoreError::Stale {
            store: store.shown_as().to_owned(),
            name,
            expected: resource.content_hash.clone(),
            found: Some(record.content_hash),
        }),
        None => Err(StoreError::Stale {
            store: store.shown_as().to_owned(),
            name,
            expected: resource.content_hash.clone(),
            found: None,
        }),
    }
}
