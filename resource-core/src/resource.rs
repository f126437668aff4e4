//! The resource value: what a leader stored and what a worker needs to fetch it.

use std::path::{Path, PathBuf};

use crate::hash::{ContentHash, PathHash};
use crate::kind::ResourceKind;

/// A resource, as Toil's `Resource` namedtuple: `(name, pathHash, url, contentHash)` and a kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    /// What the stored bytes hold.
    pub kind: ResourceKind,
    /// The base name of the leader path.
    pub name: String,
    /// The MD5 of the leader path as given.
    pub path_hash: PathHash,
    /// Where a worker fetches the stored bytes (`file:` or `http(s)` URL, or a store URL).
    pub url: String,
    /// The MD5 of the stored bytes.
    pub content_hash: ContentHash,
}

impl Resource {
    /// The directory of this resource under a worker's root: `<root>/<contentHash>`.
    pub fn local_dir_path(&self, root: &Path) -> PathBuf {
        root.join(self.content_hash.as_str())
    }

    /// The local path a worker uses: the file itself for a file resource
    /// (`<root>/<contentHash>/<name>`), the directory for archives.
    pub fn local_path(&self, root: &Path) -> PathBuf {
        let dir = self.local_dir_path(root);
        match self.kind {
            ResourceKind::File => dir.join(&self.name),
            _ => dir,
        }
    }
}
