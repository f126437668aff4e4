//! The worker's side: fetch a resource, verify its MD5, and install it atomically under
//! `<root>/<contentHash>`.
//!
//! Bytes are hashed while they stream into a temporary directory beside the final one
//! (`<contentHash>-XXXXXX`, as Toil names it); the directory is renamed into place only when the
//! hash matches. Losing that rename to another process is success. On any error the temporary
//! directory is removed, so nothing half-installed is ever visible.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use resource_core::hash::HashingReader;
use resource_core::{Resource, ResourceKind};

use crate::error::{Result, StoreError};
use crate::source::ByteSource;

/// Buffer size for streaming downloads.
const COPY_BUFFER_LEN: usize = 1 << 20;

/// A step run on the temporary directory just before it is renamed into place (Toil's download
/// callback, used to write a module's `.stash`).
pub type BeforeRename<'a> = &'a dyn Fn(&Path) -> io::Result<()>;

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The path a user of the resource opens: the file for a file resource, else the directory.
    pub path: PathBuf,
    /// The resource's directory, `<root>/<contentHash>`.
    pub dir: PathBuf,
    /// Whether this call downloaded it (`false` when it was already installed).
    pub downloaded: bool,
}

/// Checks that a resource's name is one plain path component, so that it cannot escape its
/// directory on the worker.
pub fn check_resource_name(name: &str) -> Result<()> {
    let unsafe_name =
        name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0');
    if unsafe_name {
        return Err(StoreError::UnsafeName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Installs `resource` under `root` from `source`, unless it is installed already.
pub fn install(
    resource: &Resource,
    root: &Path,
    source: &dyn ByteSource,
    before_rename: Option<BeforeRename<'_>>,
) -> Result<Installed> {
    check_resource_name(&resource.name)?;
    let dir = resource.local_dir_path(root);
    let installed = Installed {
        path: resource.local_path(root),
        dir: dir.clone(),
        downloaded: false,
    };
    if dir.exists() {
        return Ok(installed);
    }
    std::fs::create_dir_all(root).map_err(|source| StoreError::io(root, source))?;
    let temp = tempfile::Builder::new()
        .prefix(&format!("{}-", resource.content_hash))
        .tempdir_in(root)
        .map_err(|source| StoreError::io(root, source))?;
    match resource.kind {
        ResourceKind::File => fetch_file(resource, source, temp.path())?,
        other => {
            return Err(StoreError::UnsupportedUrl {
                url: resource.url.clone(),
                reason: format!("{other} resources are not supported by this build"),
            });
        }
    }
    if let Some(step) = before_rename {
        step(temp.path()).map_err(|source| StoreError::io(temp.path(), source))?;
    }
    let temp_path = temp.keep();
    match std::fs::rename(&temp_path, &dir) {
        Ok(()) => Ok(Installed {
            downloaded: true,
            ..installed
        }),
        Err(error) if dir.exists() => {
            // Another process installed the same content first; ours is a duplicate.
            let _ = error;
            let _ = std::fs::remove_dir_all(&temp_path);
            Ok(installed)
        }
        Err(source) => {
            let _ = std::fs::remove_dir_all(&temp_path);
            Err(StoreError::io(&dir, source))
        }
    }
}

fn fetch_file(resource: &Resource, source: &dyn ByteSource, temp_dir: &Path) -> Result<()> {
    let target = temp_dir.join(&resource.name);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(|source| StoreError::io(&target, source))?;
    let mut reader = HashingReader::new(source.open()?);
    let mut buffer = vec![0u8; COPY_BUFFER_LEN];
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|cause| StoreError::io(source.location(), cause))?;
        if read == 0 {
            break;
        }
        out.write_all(&buffer[..read])
            .map_err(|source| StoreError::io(&target, source))?;
    }
    let (_, actual) = reader.finish();
    if actual != resource.content_hash {
        return Err(StoreError::ContentMismatch {
            url: source.location().to_owned(),
            expected: resource.content_hash.clone(),
            actual,
        });
    }
    Ok(())
}
