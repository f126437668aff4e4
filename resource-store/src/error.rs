//! The errors of job stores, publishing and installing. Each names the path, URL or object involved.

use std::io;
use std::path::PathBuf;

use resource_core::ContentHash;

/// Something went wrong talking to a job store, publishing or installing a resource.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A store locator could not be understood.
    #[error("{locator:?} is not a job store locator: {reason}; accepted forms: {accepted}")]
    BadLocator {
        /// What the user gave.
        locator: String,
        /// Why it was refused.
        reason: String,
        /// The forms that are accepted.
        accepted: &'static str,
    },
    /// A local file or directory could not be read or written.
    // The cause is part of the message rather than a `#[source]`, so that error reporters that
    // print the whole chain do not repeat it.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        cause: io::Error,
    },
    /// The leader path to publish does not exist.
    #[error("{}: no such file or directory", path.display())]
    Missing {
        /// The leader path.
        path: PathBuf,
    },
    /// The leader path is neither a regular file nor a directory.
    #[error("{}: not a regular file or directory ({kind})", path.display())]
    NotAFileOrDirectory {
        /// The leader path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The requested kind does not fit the path.
    #[error("{}: cannot be published as a {kind} resource: {reason}", path.display())]
    KindMismatch {
        /// The leader path.
        path: PathBuf,
        /// The requested kind.
        kind: &'static str,
        /// Why it does not fit.
        reason: String,
    },
    /// A presigned URL validity outside what the providers allow.
    #[error(
        "a URL validity of {requested:?} is not possible: presigned URLs last more than 0 s and at most {max:?} (7 days, the S3, GCS and Azure limit); use `resource refresh` to re-sign older ones"
    )]
    UrlTtl {
        /// What was asked.
        requested: std::time::Duration,
        /// The provider's maximum.
        max: std::time::Duration,
    },
    /// The store no longer holds the content a descriptor names.
    #[error(
        "job store {store}: {name} holds {}, not the {expected} the descriptor names; create the resource again",
        found.as_ref().map_or("nothing recorded".to_owned(), ToString::to_string)
    )]
    Stale {
        /// The store.
        store: String,
        /// The shared name.
        name: String,
        /// The descriptor's content hash.
        expected: ContentHash,
        /// What the store records, if anything.
        found: Option<ContentHash>,
    },
    /// A name that must be one path component is not.
    #[error("resource name {name:?} is not a single file name; refusing to install it")]
    UnsafeName {
        /// The name from the descriptor.
        name: String,
    },
    /// The job store refused or failed an operation.
    #[error("job store {store}: {operation} {object}: {cause}")]
    ObjectStore {
        /// The store, as shown to users.
        store: String,
        /// What was being done.
        operation: &'static str,
        /// The object's name.
        object: String,
        /// The underlying error, boxed: it is large and errors should be cheap to return.
        cause: Box<object_store::Error>,
    },
    /// A URL cannot be fetched by this worker.
    #[error("cannot fetch {url:?}: {reason}")]
    UnsupportedUrl {
        /// The URL.
        url: String,
        /// Why it is not supported.
        reason: String,
    },
    /// The fetched bytes do not have the content hash the descriptor promises.
    #[error(
        "{url}: content hash mismatch: the descriptor says {expected} but the fetched bytes hash to \
         {actual}; the stored object was changed or corrupted after it was created; nothing was installed"
    )]
    ContentMismatch {
        /// Where the bytes came from.
        url: String,
        /// The hash the descriptor promises.
        expected: ContentHash,
        /// The hash of what was fetched.
        actual: ContentHash,
    },
    /// An HTTP request failed before a response arrived.
    #[error("{url}: {cause}")]
    Http {
        /// The URL, without its signature.
        url: String,
        /// What went wrong.
        cause: String,
    },
    /// An HTTP server answered with an error status.
    #[error("{url}: HTTP {status}: {hint}")]
    HttpStatus {
        /// The URL, without its signature.
        url: String,
        /// The status code.
        status: u16,
        /// What to do about it.
        hint: &'static str,
    },
    /// Waiting for a cache entry's lock took too long.
    #[error(
        "{}: waited {waited:?} for another process holding this cache entry's lock; \
         raise the lock timeout or find the stuck process with `fuser`",
        path.display()
    )]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited: std::time::Duration,
    },
    /// The source sent no bytes for too long.
    #[error("{url}: no data arrived for {waited:?}; the transfer stalled")]
    Stalled {
        /// Where the bytes came from.
        url: String,
        /// How long nothing arrived.
        waited: std::time::Duration,
    },
    /// The source ended before its declared length.
    #[error("{url}: the stream ended after {got} of {expected} bytes")]
    Truncated {
        /// Where the bytes came from.
        url: String,
        /// Bytes received.
        got: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// Every attempt to fetch failed; the last failure is the cause.
    #[error("{url}: giving up after {attempts} attempts: {last}")]
    GaveUp {
        /// Where the bytes came from.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: Box<StoreError>,
    },
    /// A directory could not be packed.
    #[error(transparent)]
    Pack(#[from] resource_core::archive::PackError),
    /// A virtualenv's `site-packages` could not be scanned for editable installs.
    #[error(transparent)]
    Scan(#[from] resource_modules::ScanError),
    /// An archive was refused while unpacking.
    #[error("{url}: {cause}")]
    Unpack {
        /// Where the archive came from.
        url: String,
        /// Why it was refused.
        cause: resource_core::archive::UnpackError,
    },
    /// A background task died.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, cause: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
