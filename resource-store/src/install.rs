//! The worker's side: fetch a resource once per node, verify its MD5, and install it atomically
//! under `<root>/<contentHash>`.
//!
//! One process per node downloads a given resource: the installer holds the entry's exclusive lock
//! (see [`crate::cache`]) while the others wait, then use the installed copy. Bytes are hashed (and
//! archives unpacked) while they stream into a temporary directory beside the final one; it is
//! renamed into place only when the hash matches and every archive entry passed its checks. Losing
//! the rename to a process that does not take our locks (Toil's own worker) is success. A remote
//! source is fetched as several ranges at once, handed to the hash in order. Transient failures
//! are resumed at the current offset, or retried; nothing wrong is ever installed.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use resource_archive::{ArchiveIndex, TailReadError, UnpackError, UnpackOptions};
use resource_core::hash::HashingReader;
use resource_core::{ContentHash, Resource, ResourceKind};

use crate::cache::{Cache, EntryLock};
use crate::error::{Result, StoreError, from_io};
use crate::progress::{Progress, ProgressReader};
use crate::source::{ByteSource, Opening};
use crate::transfer::{FetchPolicy, copy_out, fetch_stream, is_transient};

/// Buffer size for writing a file resource.
const COPY_BUFFER_LEN: usize = 1 << 20;
/// How often an entry may vanish (evicted by another process) between our install and our use.
const MAX_INSTALL_ROUNDS: u32 = 3;

/// A step run on the temporary directory just before it is renamed into place (Toil's download
/// callback, used to write a module's `.stash`).
pub type BeforeRename<'a> = &'a dyn Fn(&Path) -> io::Result<()>;

/// How to install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// How long to wait for another process that is installing the same resource.
    pub lock_timeout: Duration,
    /// Retries, resumption and stall detection.
    pub fetch: FetchPolicy,
    /// Limits for unpacking archives.
    pub unpack: UnpackOptions,
    /// Told how many bytes have been fetched, as they arrive.
    pub progress: Option<Progress>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(600),
            fetch: FetchPolicy::default(),
            unpack: UnpackOptions::default(),
            progress: None,
        }
    }
}

/// What [`install`] did.
#[derive(Debug)]
pub struct Installed {
    /// The path a user of the resource opens: the file for a file resource, else the directory.
    pub path: PathBuf,
    /// The resource's directory, `<root>/<contentHash>`.
    pub dir: PathBuf,
    /// Whether this call downloaded it (`false` when it was already installed).
    pub downloaded: bool,
    /// A shared lock on the entry: while it is held, no `gc` or `clean` removes the entry.
    pub hold: EntryLock,
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

/// Installs `resource` under `root` from `source`, unless it is installed already, and returns it
/// with a shared lock held on the entry.
pub fn install(
    resource: &Resource,
    root: &Path,
    source: Arc<dyn ByteSource>,
    before_rename: Option<BeforeRename<'_>>,
    options: &InstallOptions,
) -> Result<Installed> {
    check_resource_name(&resource.name)?;
    let cache = Cache::new(root);
    cache.create()?;
    let hash = &resource.content_hash;
    let dir = cache.entry_dir(hash);
    let mut downloaded = false;
    for _ in 0..MAX_INSTALL_ROUNDS {
        let hold = cache.lock_shared(hash, options.lock_timeout)?;
        if dir.exists() {
            return Ok(Installed {
                path: resource.local_path(root),
                dir,
                downloaded,
                hold,
            });
        }
        drop(hold);
        let _exclusive = cache.lock_exclusive(hash, options.lock_timeout)?;
        if !dir.exists() {
            cache.sweep_temporaries_of(hash)?;
            let size = fetch_with_retries(resource, &cache, &source, before_rename, options)?;
            downloaded = true;
            cache.write_meta(hash, resource.kind, &resource.name, size)?;
        }
    }
    Err(StoreError::EntryVanished {
        dir,
        rounds: MAX_INSTALL_ROUNDS,
    })
}

/// Fetches into a fresh temporary directory per attempt and renames it into place; returns the
/// bytes of content installed.
fn fetch_with_retries(
    resource: &Resource,
    cache: &Cache,
    source: &Arc<dyn ByteSource>,
    before_rename: Option<BeforeRename<'_>>,
    options: &InstallOptions,
) -> Result<u64> {
    let policy = &options.fetch;
    let mut backoff = policy.first_backoff;
    let mut content_failures = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let temp = cache.temp_dir(&resource.content_hash)?;
        let error = match fetch_into(resource, source, temp.path(), cache.root(), options) {
            Ok(size) => {
                if let Some(step) = before_rename {
                    step(temp.path()).map_err(|cause| StoreError::io(temp.path(), cause))?;
                }
                let dir = cache.entry_dir(&resource.content_hash);
                let temp_path = temp.keep();
                return match std::fs::rename(&temp_path, &dir) {
                    Ok(()) => Ok(size),
                    // A process that does not take our locks (Toil's worker) installed it first.
                    Err(_) if dir.exists() => {
                        let _ = std::fs::remove_dir_all(&temp_path);
                        Ok(size)
                    }
                    Err(cause) => {
                        let _ = std::fs::remove_dir_all(&temp_path);
                        Err(StoreError::io(&dir, cause))
                    }
                };
            }
            Err(error) => error,
        };
        // Wrong bytes may be damage in transit, worth one more try; a second time they are what
        // the store holds.
        let retry = if is_transient(&error) {
            true
        } else if matches!(
            error,
            StoreError::ContentMismatch { .. } | StoreError::Unpack { .. }
        ) {
            content_failures += 1;
            content_failures < 2
        } else {
            false
        };
        if !retry {
            return Err(error);
        }
        if attempt >= policy.attempts {
            return Err(StoreError::GaveUp {
                url: resource.url.clone(),
                attempts: attempt,
                last: Box::new(error),
            });
        }
        thread::sleep(backoff);
        backoff = backoff.saturating_mul(2);
    }
}

/// One attempt: stream, hash, and write or unpack into `temp_dir`; returns the bytes installed.
///
/// The first request gives the size and the first bytes. A file streams on from there. An archive
/// whose first answer holds it whole (a small one, or any from a server that ignores ranges) is
/// hashed into memory (or, when large, a temporary file beside the cache's entries) and unpacked
/// from there: no second request. Otherwise its tail (the central directory) and the rest are
/// asked for at once, while the first range arrives.
fn fetch_into(
    resource: &Resource,
    source: &Arc<dyn ByteSource>,
    temp_dir: &Path,
    spool_dir: &Path,
    options: &InstallOptions,
) -> Result<u64> {
    let location = source.location().to_owned();
    let policy = &options.fetch;
    let asked = Instant::now();
    let opening = source.open_start(policy.first_request_len.max(1))?;
    let len = opening.len;
    let archive = resource.kind != ResourceKind::File;
    let collect_whole =
        archive && opening.is_whole() && !source_reads_tail_cheaply(&opening, policy);
    let tail = if archive && !collect_whole {
        Some(spawn_index_read(source, len)?)
    } else {
        None
    };
    if let Some(progress) = &options.progress {
        progress.set_total(len);
    }
    let stream = fetch_stream(source, opening, asked, policy)
        .map_err(|cause| StoreError::io(&location, cause))?;
    let mut reader = HashingReader::new(ProgressReader {
        inner: stream,
        progress: options.progress.clone(),
    });
    let size = if !archive {
        let target = temp_dir.join(&resource.name);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|cause| StoreError::io(&target, cause))?;
        copy_stream(&mut reader, &mut out, &target, &location)?
    } else if let Some(tail) = tail {
        let early = hash_while_waiting(&mut reader, &tail, policy.range_len, &location)?;
        let index = tail.join().map_err(|_| StoreError::ThreadDied {
            url: location.clone(),
            thread: "the thread reading the archive's tail",
        })??;
        let archive = EarlyBytes::new(early).chain(&mut reader);
        let summary = resource_archive::unpack(&index, archive, temp_dir, &options.unpack)
            .map_err(|source| unpack_error(source, &location))?;
        summary.bytes
    } else if len <= policy.first_request_len {
        // Read straight into the buffer sized from the first answer: no intermediate 1 MiB
        // buffer to fault in and copy through, which is a measurable part of a small download.
        // The bytes still pass through the hashing reader, so the MD5 check below is unchanged.
        let mut whole = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        reader
            .read_to_end(&mut whole)
            .map_err(|error| from_io(error, &location))?;
        unpack_whole(io::Cursor::new(whole), temp_dir, &location, options)?
    } else {
        let mut spool =
            tempfile::tempfile_in(spool_dir).map_err(|cause| StoreError::io(spool_dir, cause))?;
        copy_stream(&mut reader, &mut spool, spool_dir, &location)?;
        unpack_whole(spool, temp_dir, &location, options)?
    };
    let (_, actual) = reader
        .finish()
        .map_err(|error| StoreError::io(&location, error.into()))?;
    check_hash(&resource.content_hash, actual, &location)?;
    Ok(size)
}

/// Reads the archive's first bytes through `reader` (so that they are hashed) into memory while
/// its tail, which unpacking needs first, is still on its way: at most `limit` bytes. Hashing is
/// the slowest stage of a large download, and the tail's request went out a round trip after the
/// first one, so the first range's bytes would otherwise wait for it.
fn hash_while_waiting(
    reader: &mut impl Read,
    tail: &thread::JoinHandle<Result<ArchiveIndex>>,
    limit: u64,
    location: &str,
) -> Result<Vec<u8>> {
    const READ_LEN: usize = 256 << 10;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut early = Vec::new();
    while !tail.is_finished() && early.len() < limit {
        let want = READ_LEN.min(limit - early.len()) as u64;
        let read = (&mut *reader)
            .take(want)
            .read_to_end(&mut early)
            .map_err(|error| from_io(error, location))?;
        if read == 0 {
            break;
        }
    }
    Ok(early)
}

/// The bytes [`hash_while_waiting`] read, given back to the unpacker before the rest of the
/// stream. Their buffer (up to a range long) is freed as soon as they are read, rather than held
/// to the end of the unpacking, when more ranges are in memory.
struct EarlyBytes {
    bytes: Vec<u8>,
    consumed: usize,
}

impl EarlyBytes {
    fn new(bytes: Vec<u8>) -> Self {
        Self { bytes, consumed: 0 }
    }
}

impl Read for EarlyBytes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = copy_out(&self.bytes, &mut self.consumed, buf);
        if self.consumed == self.bytes.len() {
            self.bytes = Vec::new();
            self.consumed = 0;
        }
        Ok(read)
    }
}

/// Whether, with the whole archive in the first answer, its tail is still best read on its own
/// (a large local file, whose tail costs no request) rather than collected with the rest.
fn source_reads_tail_cheaply(opening: &Opening, policy: &FetchPolicy) -> bool {
    opening.ranged && opening.len > policy.first_request_len
}

/// Reads the archive's central directory from its tail, in a thread of its own, so that the
/// request goes out beside the first range's body and the ranges after it.
fn spawn_index_read(
    source: &Arc<dyn ByteSource>,
    len: u64,
) -> Result<thread::JoinHandle<Result<ArchiveIndex>>> {
    let location = source.location().to_owned();
    let source = Arc::clone(source);
    thread::Builder::new()
        .name("resource-tail".into())
        .spawn(move || read_index(source.as_ref(), len))
        .map_err(|cause| StoreError::io(location, cause))
}

/// Unpacks a whole archive held in `archive` (memory or a temporary file) into `temp_dir`;
/// returns the bytes installed.
fn unpack_whole(
    mut archive: impl Read + Seek,
    temp_dir: &Path,
    location: &str,
    options: &InstallOptions,
) -> Result<u64> {
    let index =
        ArchiveIndex::read_from(&mut archive).map_err(|source| unpack_error(source, location))?;
    archive
        .seek(SeekFrom::Start(0))
        .map_err(|cause| StoreError::io(location, cause))?;
    let summary = resource_archive::unpack(&index, archive, temp_dir, &options.unpack)
        .map_err(|source| unpack_error(source, location))?;
    Ok(summary.bytes)
}

fn check_hash(expected: &ContentHash, actual: ContentHash, location: &str) -> Result<()> {
    if &actual != expected {
        return Err(StoreError::ContentMismatch {
            url: location.to_owned(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

/// An unpacking failure; a failed read underneath it is reported as the transfer error it is.
fn unpack_error(error: UnpackError, location: &str) -> StoreError {
    match error {
        UnpackError::Read { source, .. } => from_io(source, location),
        cause => StoreError::Unpack {
            url: location.to_owned(),
            cause,
        },
    }
}

/// Reads the archive's central directory from its tail.
fn read_index(source: &dyn ByteSource, len: u64) -> Result<ArchiveIndex> {
    ArchiveIndex::read_tail_with(len, |want| source.read_tail(want)).map_err(|error| match error {
        TailReadError::Read(error) => error,
        TailReadError::Index(error) => unpack_error(error, source.location()),
    })
}

/// Copies `reader` to `out` (named `target` in messages); returns the bytes copied.
fn copy_stream(
    reader: &mut impl Read,
    out: &mut impl Write,
    target: &Path,
    location: &str,
) -> Result<u64> {
    let mut buffer = vec![0u8; COPY_BUFFER_LEN];
    let mut total = 0u64;
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|error| from_io(error, location))?;
        if read == 0 {
            return Ok(total);
        }
        out.write_all(&buffer[..read])
            .map_err(|cause| StoreError::io(target, cause))?;
        total += read as u64;
    }
}
