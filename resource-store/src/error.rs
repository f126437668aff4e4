//! The errors of job stores, publishing and installing. Each names the path, URL or object involved;
//! its cause, if any, is its `source` and is not repeated in its message (print the chain, as the
//! CLI does, to read the whole story).
//!
//! The conversions between [`StoreError`], `io::Error` (errors travel through `io::Read` streams)
//! and `object_store::Error` live here too, in one place.

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
    #[error("{}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
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
    #[error("job store {store}: {operation} {object}")]
    ObjectStore {
        /// The store, as shown to users.
        store: String,
        /// What was being done.
        operation: &'static str,
        /// The object's name.
        object: String,
        /// The underlying error, boxed: it is large and errors should be cheap to return.
        #[source]
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
    #[error("{url}: giving up after {attempts} attempts")]
    GaveUp {
        /// Where the bytes came from.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<StoreError>,
    },
    /// A directory could not be packed.
    #[error(transparent)]
    Pack(#[from] resource_archive::PackError),
    /// A virtualenv's `site-packages` could not be scanned for editable installs.
    #[error(transparent)]
    Scan(#[from] resource_modules::ScanError),
    /// An archive was refused while unpacking.
    #[error("{url}")]
    Unpack {
        /// Where the archive came from.
        url: String,
        /// Why it was refused.
        #[source]
        cause: resource_archive::UnpackError,
    },
    /// A record (the store's `<name>.resource.json`, a cache entry's metadata) could not be
    /// encoded as JSON.
    #[error("{record}: cannot encode the record as JSON")]
    RecordJson {
        /// The record's object or path.
        record: String,
        /// What serde_json said.
        #[source]
        cause: serde_json::Error,
    },
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {task}")]
    TaskFailed {
        /// What the task was doing.
        task: &'static str,
        /// Whether it panicked (and with what message) or was cancelled.
        #[source]
        cause: tokio::task::JoinError,
    },
    /// A thread feeding a transfer ended without handing over its result: it panicked.
    #[error("{url}: internal error: {thread} died")]
    ThreadDied {
        /// What was being fetched.
        url: String,
        /// Which thread.
        thread: &'static str,
    },
    /// Another process removed a cache entry right after each of our installs.
    #[error(
        "{}: the entry was removed by another process {rounds} times right after it was installed",
        dir.display()
    )]
    EntryVanished {
        /// The entry's directory.
        dir: PathBuf,
        /// How many times it was installed.
        rounds: u32,
    },
    /// Something that cannot happen happened: a bug, not worth retrying.
    #[error("{location}: internal error: {invariant}")]
    BrokenInvariant {
        /// Where it happened: a URL or path.
        location: String,
        /// What went wrong, against what should have held.
        invariant: &'static str,
    },
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

/// The error of a failed `object_store` call: `operation` on `object` (empty for the store
/// itself) in the store shown as `store`.
pub(crate) fn object_store_error(
    store: String,
    operation: &'static str,
    object: String,
) -> impl FnOnce(object_store::Error) -> StoreError {
    move |cause| StoreError::ObjectStore {
        store,
        operation,
        object,
        cause: Box::new(cause),
    }
}

/// An `object_store` failure in the middle of a stream from `url`, as the I/O error a reader
/// returns. It is a transfer error, so that the caller resumes from where the stream broke.
pub(crate) fn object_stream_error(url: &str, cause: &object_store::Error) -> io::Error {
    to_io(StoreError::Http {
        url: url.to_owned(),
        cause: cause.to_string(),
    })
}

/// Wraps a [`StoreError`] so it can travel through `io::Read`.
pub(crate) fn to_io(error: StoreError) -> io::Error {
    io::Error::other(error)
}

/// Recovers a [`StoreError`] that travelled through `io::Read`, or wraps a plain I/O error as
/// one on `location`.
pub(crate) fn from_io(error: io::Error, location: &str) -> StoreError {
    match error.downcast::<StoreError>() {
        Ok(store_error) => store_error,
        Err(error) => StoreError::io(location, error),
    }
}

/// The result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_survive_the_trip_through_io_and_plain_io_errors_name_the_location() {
        let stalled = StoreError::Stalled {
            url: "http://x/a".into(),
            waited: std::time::Duration::from_secs(3),
        };
        let back = from_io(to_io(stalled), "elsewhere");
        assert!(
            matches!(&back, StoreError::Stalled { url, .. } if url == "http://x/a"),
            "{back:?}"
        );

        let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        let wrapped = from_io(plain, "http://x/b");
        assert!(
            matches!(&wrapped, StoreError::Io { path, cause }
                if path == std::path::Path::new("http://x/b")
                    && cause.kind() == io::ErrorKind::ConnectionReset),
            "{wrapped:?}"
        );

        let cause = object_store::Error::Generic {
            store: "S3",
            source: "connection closed".into(),
        };
        let mid_stream = from_io(object_stream_error("s3://b/k", &cause), "elsewhere");
        assert!(
            matches!(&mid_stream, StoreError::Http { url, cause }
                if url == "s3://b/k" && cause.contains("connection closed")),
            "{mid_stream:?}"
        );
    }

    #[test]
    fn object_store_errors_name_the_store_the_operation_and_the_object() {
        let cause = object_store::Error::NotFound {
            path: "shared/x".into(),
            source: "gone".into(),
        };
        let error = object_store_error("s3://bucket".into(), "read", "shared/x".into())(cause);
        assert_eq!(error.to_string(), "job store s3://bucket: read shared/x");
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert!(
            cause.as_deref().is_some_and(|cause| cause.contains("gone")),
            "the cause is the source: {error:?}"
        );
    }
}
