//! The leader's side: turn a path into a stored, registered-ready resource.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use resource_core::{ContentHash, PathHash, Resource, ResourceKind};

use crate::error::{Result, StoreError};
use crate::store::JobStore;

/// Buffer size for reading leader files: large reads keep syscalls off the MD5's critical path.
const READ_BUFFER_LEN: usize = 1 << 20;

/// How to publish a path.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// The kind to publish as; detected from the path when `None`.
    pub kind: Option<ResourceKind>,
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

/// Stores the resource made from `leader_path` in `store` and returns it, ready to register.
///
/// The bytes are streamed in constant memory and hashed on the way. When the store already holds
/// the same content under the same path hash, nothing is uploaded.
pub async fn publish(
    store: &JobStore,
    leader_path: &Path,
    options: &PublishOptions,
) -> Result<Published> {
    let kind = detect_kind(leader_path, options.kind)?;
    let name = resource_name(leader_path)?;
    let path_hash = PathHash::of_path(leader_path);
    match kind {
        ResourceKind::File => publish_file(store, leader_path, name, path_hash).await,
        other => Err(StoreError::KindMismatch {
            path: leader_path.to_path_buf(),
            kind: other.short_name(),
            reason: "directory and virtualenv resources are not supported by this build".into(),
        }),
    }
}

async fn publish_file(
    store: &JobStore,
    leader_path: &Path,
    name: String,
    path_hash: PathHash,
) -> Result<Published> {
    let shared_name = path_hash.to_string();
    let url = store.url_for(&shared_name)?;
    if let Some(record) = store.recorded(&shared_name).await? {
        let path = leader_path.to_path_buf();
        let (content_hash, size) = tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .map_err(|error| StoreError::Task(error.to_string()))??;
        if content_hash == record.content_hash && record.kind == ResourceKind::File.short_name() {
            return Ok(Published {
                resource: Resource {
                    kind: ResourceKind::File,
                    name,
                    path_hash,
                    url,
                    content_hash,
                },
                uploaded: false,
                stored_bytes: size,
            });
        }
    }
    let path = leader_path.to_path_buf();
    let uploaded = store
        .upload(&shared_name, ResourceKind::File, move |out| {
            copy_file(&path, out)
        })
        .await?;
    Ok(Published {
        resource: Resource {
            kind: ResourceKind::File,
            name,
            path_hash,
            url,
            content_hash: uploaded.content_hash,
        },
        uploaded: true,
        stored_bytes: uploaded.size,
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

fn hash_file(path: &Path) -> Result<(ContentHash, u64)> {
    let mut writer = resource_core::hash::HashingWriter::new(std::io::sink());
    let size = copy_file(path, &mut writer)?;
    Ok((writer.finish().1, size))
}
