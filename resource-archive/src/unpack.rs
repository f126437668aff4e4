//! The safe, streaming archive reader: one sequential pass over the archive bytes that unpacks
//! them, so the caller can hash the same pass.
//!
//! [`unpack`] reads every byte, including gaps between entries and the central directory, and
//! checks that the central directory in the stream is byte for byte the one the index was parsed
//! from. Each local header must agree with its central entry, each entry's data must inflate to
//! exactly its declared size and CRC, and an optional data descriptor must agree too.
//!
//! Reading and hashing happen on the calling thread; decompression, CRC and file writes happen on a
//! second thread, fed through a small pool of 1 MiB buffers, so memory stays constant and the work
//! overlaps with the hash. A small archive (see [`UnpackOptions::inline_max_len`]) is unpacked on
//! the calling thread from one buffer of its own size: there is little to overlap, and a thread
//! and megabytes of fresh buffers would cost it more than they save. What is refused, and how this
//! compares with Python's `extractall`, is in the crate documentation.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::thread;

use filetime::FileTime;
use flate2::{Decompress, FlushDecompress, Status};
use fs_err::os::unix::fs::OpenOptionsExt;
use resource_core::ContentHash;
use resource_core::hash::HashingReader;

use crate::error::UnpackError;
use crate::format::{
    DATA_DESCRIPTOR_SIG, EXTRA_ZIP64, FLAG_DATA_DESCRIPTOR, FLAG_ENCRYPTED, LOCAL_HEADER_LEN,
    LOCAL_HEADER_SIG, Le, METHOD_DEFLATE, METHOD_STORED, extra_fields,
};
use crate::index::{ArchiveIndex, IndexEntry, IndexEntryKind, Method};
use crate::names::link_target_problem;
use crate::options::UnpackOptions;

/// Size of each buffer the stream is read into.
const BUF_LEN: usize = 1 << 20;
/// Buffers in flight between the reading and the writing thread.
const MAX_BUFFERS: usize = 4;
/// Size of the buffer deflate output goes through.
const INFLATE_BUF_LEN: usize = 256 << 10;

/// What [`unpack`] created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnpackSummary {
    /// Regular files.
    pub files: u64,
    /// Directories, explicit entries and implied parents alike.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Unpacks the archive read from `stream` into the existing directory `dest`, reading the stream
/// sequentially from its first byte to its end.
///
/// `index` must be the index of the same archive (parsed from its tail); the stream's central
/// directory and end records are compared with it byte for byte. Pass `&mut reader` to keep the
/// reader, for instance a [`HashingReader`] whose hash is checked afterwards. `dest` should be a
/// fresh, empty directory; on error it holds a partial tree and the caller deletes it.
///
/// ```
/// use std::io::{Cursor, Write};
/// use resource_archive::{unpack, ArchiveIndex, TailParse, UnpackOptions, RECOMMENDED_TAIL_LEN};
/// use resource_core::hash::HashingReader;
/// use resource_core::ContentHash;
///
/// # // A small archive, made here with the `zip` crate.
/// # let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
/// # zip.start_file("pkg/__init__.py", zip::write::SimpleFileOptions::default())?;
/// # zip.write_all(b"print('hi')\n")?;
/// # let archive: Vec<u8> = zip.finish()?.into_inner();
/// // 1. Parse the index from the archive's tail (a range request, for a remote archive).
/// let len = archive.len() as u64;
/// let tail = &archive[archive.len() - len.min(RECOMMENDED_TAIL_LEN) as usize..];
/// let TailParse::Index(index) = ArchiveIndex::from_tail(tail, len)? else {
///     return Err("a large central directory: fetch the longer tail asked for".into());
/// };
///
/// // 2. Stream the whole archive once, hashing and unpacking it together.
/// let dest = tempfile::tempdir()?;
/// let mut stream = HashingReader::new(Cursor::new(&archive));
/// let summary = unpack(&index, &mut stream, dest.path(), &UnpackOptions::default())?;
/// let (_, content_hash) = stream.finish()?;
///
/// assert_eq!(content_hash, ContentHash::of_bytes(&archive));
/// assert_eq!((summary.files, summary.dirs), (1, 1));
/// assert_eq!(std::fs::read(dest.path().join("pkg/__init__.py"))?, b"print('hi')\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn unpack<R: Read>(
    index: &ArchiveIndex,
    stream: R,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackSummary, UnpackError> {
    let count = index.entries().len() as u64;
    if count > options.max_entries {
        return Err(UnpackError::TooManyEntries {
            count,
            max: options.max_entries,
        });
    }
    let mut declared = 0u64;
    for entry in index.entries() {
        declared = declared.saturating_add(entry.uncompressed_size);
        if declared > options.max_total_bytes {
            return Err(UnpackError::TooLarge {
                name: entry.name.clone(),
                max: options.max_total_bytes,
            });
        }
    }
    check_destination(dest)?;

    let (pool_tx, pool_rx) = mpsc::channel::<Vec<u8>>();
    let writer = Writer::new(index.entries(), dest, options);
    if index.archive_len() <= options.inline_max_len {
        let downstream = Downstream::Inline {
            writer: Box::new(writer),
            pool: pool_tx,
        };
        return read_archive(index, stream, downstream, pool_rx)?.ok_or(UnpackError::Internal {
            reason: "the archive ended without its summary",
        });
    }
    let (to_writer, from_reader) = mpsc::sync_channel::<Msg>(MAX_BUFFERS);
    thread::scope(|scope| {
        let handle = thread::Builder::new()
            .name("resource-unpack".to_owned())
            .spawn_scoped(scope, move || writer.run(from_reader, pool_tx))
            .map_err(|source| UnpackError::Spawn { source })?;
        let read = read_archive(index, stream, Downstream::Thread(to_writer), pool_rx);
        let written = handle.join().map_err(|_| UnpackError::Internal {
            reason: "the unpacking thread panicked",
        })?;
        // The writer's error concerns earlier bytes than the reader's: report it first.
        match (read, written) {
            (_, Err(error)) | (Err(error), Ok(_)) => Err(error),
            (Ok(_), Ok(Some(summary))) => Ok(summary),
            (Ok(_), Ok(None)) => Err(UnpackError::Internal {
                reason: "the unpacking thread stopped before the end",
            }),
        }
    })
}

/// Indexes and unpacks a local archive file into `dest`, returning what was created and the MD5 of
/// the archive bytes read while unpacking (compare it with the expected content hash before using
/// `dest`).
pub fn unpack_file(
    archive: &Path,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<(UnpackSummary, ContentHash), UnpackError> {
    let read_err = |source| UnpackError::Read { offset: 0, source };
    let mut file = fs_err::File::open(archive).map_err(read_err)?;
    let index = ArchiveIndex::read_from(&mut file)?;
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let mut reader = HashingReader::new(file);
    let summary = unpack(&index, &mut reader, dest, options)?;
    let (_, hash) = reader.finish().map_err(|error| read_err(error.into()))?;
    Ok((summary, hash))
}

fn check_destination(dest: &Path) -> Result<(), UnpackError> {
    let invalid = |reason| UnpackError::InvalidDestination {
        path: dest.to_path_buf(),
        reason,
    };
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => Err(invalid("it is a symlink")),
        Ok(_) => Err(invalid("it is not a directory")),
        Err(_) => Err(invalid("it does not exist or cannot be read")),
    }
}

/// One step for the writing thread, in stream order.
#[derive(Debug)]
enum Op {
    /// The data of entry `i` (an index into [`ArchiveIndex::entries`]) follows.
    Entry(usize),
    /// Data of the current entry, a range of the chunk's buffer.
    Data(Range<usize>),
}

#[derive(Debug)]
enum Msg {
    /// A buffer of the stream and what to do with the parts of it that belong to entries.
    Chunk { buf: Vec<u8>, ops: Vec<Op> },
    /// The stream has been read to its end and checked.
    Finish,
}

/// Where the reading side hands its buffers: the writing thread, or a writer run right here.
enum Downstream<'a> {
    Thread(SyncSender<Msg>),
    Inline {
        writer: Box<Writer<'a>>,
        /// Where the writer returns each buffer once it is done with it.
        pool: Sender<Vec<u8>>,
    },
}

impl Downstream<'_> {
    /// Hands `msg` on; for an inline writer, returns its summary once `msg` finished the archive.
    fn send(&mut self, msg: Msg) -> Result<Option<UnpackSummary>, UnpackError> {
        match self {
            Self::Thread(to_writer) => {
                to_writer.send(msg).map_err(|_| writer_gone())?;
                Ok(None)
            }
            Self::Inline { writer, pool } => writer.handle(msg, pool),
        }
    }
}

/// The reading side: the stream, read into large buffers that are handed to the writer.
struct Input<'w, R> {
    reader: R,
    buf: Vec<u8>,
    /// The unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The archive offset of `buf[start]`.
    pos: u64,
    eof: bool,
    /// What the writer must do with the consumed part of `buf`.
    ops: Vec<Op>,
    archive_len: u64,
    downstream: Downstream<'w>,
    pool: Receiver<Vec<u8>>,
    allocated: usize,
}

/// The writer stopped (it reports why).
fn writer_gone() -> UnpackError {
    UnpackError::Internal {
        reason: "the unpacking thread stopped",
    }
}

impl<R: Read> Input<'_, R> {
    fn avail(&self) -> usize {
        self.end - self.start
    }

    fn truncated(&self) -> UnpackError {
        UnpackError::Truncated {
            offset: self.pos + self.avail() as u64,
            archive_len: self.archive_len,
        }
    }

    /// Reads until the buffer is full or the stream ends.
    fn fill(&mut self) -> Result<(), UnpackError> {
        while self.end < self.buf.len() && !self.eof {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(UnpackError::Read {
                        offset: self.pos + self.avail() as u64,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn fresh_buffer(&mut self) -> Result<Vec<u8>, UnpackError> {
        match self.pool.try_recv() {
            // The first buffer may be shorter (see `read_archive`).
            Ok(mut buf) => {
                buf.resize(BUF_LEN, 0);
                return Ok(buf);
            }
            Err(TryRecvError::Disconnected) => return Err(writer_gone()),
            Err(TryRecvError::Empty) => {}
        }
        if self.allocated < MAX_BUFFERS {
            self.allocated += 1;
            return Ok(vec![0; BUF_LEN]);
        }
        let mut buf = self.pool.recv().map_err(|_| writer_gone())?;
        buf.resize(BUF_LEN, 0);
        Ok(buf)
    }

    /// Moves the unconsumed bytes to the front of a buffer, handing the current buffer to the
    /// writer first if parts of it belong to entries.
    fn make_room(&mut self) -> Result<(), UnpackError> {
        let left = self.avail();
        if self.ops.is_empty() {
            self.buf.copy_within(self.start..self.end, 0);
            // A first buffer of the archive's own length is full only when the stream runs on
            // past the archive; grow it, so that `need` can still take any header.
            if self.buf.len() < BUF_LEN {
                self.buf.resize(BUF_LEN, 0);
            }
        } else {
            let mut next = self.fresh_buffer()?;
            next[..left].copy_from_slice(&self.buf[self.start..self.end]);
            let buf = mem::replace(&mut self.buf, next);
            let ops = mem::take(&mut self.ops);
            self.downstream.send(Msg::Chunk { buf, ops })?;
        }
        self.start = 0;
        self.end = left;
        Ok(())
    }

    /// Reads more of the stream; an error if it has ended.
    fn refill(&mut self) -> Result<(), UnpackError> {
        if self.eof {
            return Err(self.truncated());
        }
        if self.end == self.buf.len() {
            self.make_room()?;
        }
        self.fill()
    }

    /// The next `n` unconsumed bytes, contiguous (`n` at most `BUF_LEN`).
    fn need(&mut self, n: usize) -> Result<&[u8], UnpackError> {
        while self.avail() < n {
            self.refill()?;
        }
        Ok(&self.buf[self.start..self.start + n])
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Hands the next `n` bytes to the writer as the current entry's data.
    fn data(&mut self, mut n: u64) -> Result<(), UnpackError> {
        while n > 0 {
            if self.avail() == 0 {
                self.refill()?;
                continue;
            }
            let take = self.avail().min(usize::try_from(n).unwrap_or(usize::MAX));
            self.ops.push(Op::Data(self.start..self.start + take));
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads past the next `n` bytes, showing each piece and its offset to `check`.
    fn skip(
        &mut self,
        mut n: u64,
        mut check: impl FnMut(&[u8], u64) -> Result<(), UnpackError>,
    ) -> Result<(), UnpackError> {
        while n > 0 {
            if self.avail() == 0 {
                self.refill()?;
                continue;
            }
            let take = self.avail().min(usize::try_from(n).unwrap_or(usize::MAX));
            check(&self.buf[self.start..self.start + take], self.pos)?;
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Checks that the stream ends here and hands the last buffer to the writer; returns the
    /// summary of an inline writer.
    fn finish(mut self) -> Result<Option<UnpackSummary>, UnpackError> {
        if self.avail() == 0 && !self.eof {
            if self.end == self.buf.len() {
                self.make_room()?;
            }
            self.fill()?;
        }
        if self.avail() > 0 {
            return Err(UnpackError::TrailingData {
                archive_len: self.archive_len,
            });
        }
        let ops = mem::take(&mut self.ops);
        let buf = mem::take(&mut self.buf);
        self.downstream.send(Msg::Chunk { buf, ops })?;
        self.downstream.send(Msg::Finish)
    }
}

/// Reads the whole archive, handing its entries' data downstream; returns an inline writer's
/// summary.
fn read_archive<R: Read>(
    index: &ArchiveIndex,
    reader: R,
    downstream: Downstream<'_>,
    pool: Receiver<Vec<u8>>,
) -> Result<Option<UnpackSummary>, UnpackError> {
    // An archive shorter than a buffer gets one of its own length, and one byte more, so that the
    // end of the stream (or a byte past it) is seen by the same fill.
    let first_len = usize::try_from(index.archive_len())
        .map_or(BUF_LEN, |len| len.saturating_add(1).min(BUF_LEN));
    let mut input = Input {
        reader,
        buf: vec![0; first_len],
        start: 0,
        end: 0,
        pos: 0,
        eof: false,
        ops: Vec::new(),
        archive_len: index.archive_len(),
        downstream,
        pool,
        allocated: 1,
    };
    let entries = index.entries();
    let cd_offset = index.central_dir_offset();
    for (i, entry) in entries.iter().enumerate() {
        let (boundary, other) = match entries.get(i + 1) {
            Some(next) => (next.local_header_offset, next.name.as_str()),
            None => (cd_offset, "the central directory"),
        };
        let overlap = || UnpackError::Overlap {
            name: entry.name.clone(),
            other: other.to_owned(),
        };
        // Bytes between entries are read (and hashed by the caller) but not extracted.
        let gap = entry
            .local_header_offset
            .checked_sub(input.pos)
            .ok_or_else(|| UnpackError::Overlap {
                name: entry.name.clone(),
                other: "the entry before it".to_owned(),
            })?;
        input.skip(gap, |_, _| Ok(()))?;

        let zip64 = read_local_header(&mut input, entry)?;
        if input
            .pos
            .checked_add(entry.compressed_size)
            .is_none_or(|end| end > boundary)
        {
            return Err(overlap());
        }
        input.ops.push(Op::Entry(i));
        input.data(entry.compressed_size)?;
        if entry.flags() & FLAG_DATA_DESCRIPTOR != 0 {
            let room = boundary - input.pos;
            read_data_descriptor(&mut input, entry, room, zip64)?;
        }
    }

    let gap = cd_offset
        .checked_sub(input.pos)
        .ok_or(UnpackError::Internal {
            reason: "read past the central directory",
        })?;
    input.skip(gap, |_, _| Ok(()))?;
    let trailer = index.trailer();
    input.skip(trailer.len() as u64, |piece, offset| {
        let from = (offset - cd_offset) as usize;
        let expected = &trailer[from..from + piece.len()];
        match piece.iter().zip(expected).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(at) => Err(UnpackError::TailMismatch {
                offset: offset + at as u64,
            }),
        }
    })?;
    input.finish()
}

fn method_number(compression: Method) -> u16 {
    match compression {
        Method::Stored => METHOD_STORED,
        Method::Deflate => METHOD_DEFLATE,
    }
}

/// Reads and checks the local header of `entry`, which starts at the current position. Returns
/// whether it carries a zip64 extra field.
fn read_local_header<R: Read>(
    input: &mut Input<R>,
    entry: &IndexEntry,
) -> Result<bool, UnpackError> {
    let offset = input.pos;
    let fixed: [u8; LOCAL_HEADER_LEN] =
        input
            .need(LOCAL_HEADER_LEN)?
            .try_into()
            .map_err(|_| UnpackError::Internal {
                reason: "local header length",
            })?;
    let u16_at = |at: usize| u16::from_le_bytes([fixed[at], fixed[at + 1]]);
    let u32_at =
        |at: usize| u32::from_le_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]);
    if u32_at(0) != LOCAL_HEADER_SIG {
        return Err(UnpackError::Malformed {
            offset,
            reason: format!("entry {:?}: no local header at its offset", entry.name),
        });
    }
    let flags = u16_at(6);
    let method = u16_at(8);
    let crc = u32_at(14);
    let compressed32 = u32_at(18);
    let uncompressed32 = u32_at(22);
    let name_len = usize::from(u16_at(26));
    let extra_len = usize::from(u16_at(28));
    let header = input.need(LOCAL_HEADER_LEN + name_len + extra_len)?;
    let name = &header[LOCAL_HEADER_LEN..LOCAL_HEADER_LEN + name_len];
    let extra = &header[LOCAL_HEADER_LEN + name_len..];

    let mismatch = |field, central: String, local: String| UnpackError::HeaderMismatch {
        name: entry.name.clone(),
        field,
        central,
        local,
    };
    if name != entry.raw_name() {
        return Err(mismatch(
            "name",
            entry.name.clone(),
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    let central_method = method_number(entry.compression);
    if method != central_method {
        return Err(mismatch(
            "compression method",
            central_method.to_string(),
            method.to_string(),
        ));
    }
    let significant = FLAG_DATA_DESCRIPTOR | FLAG_ENCRYPTED | (1 << 6) | (1 << 13);
    if (flags ^ entry.flags()) & significant != 0 {
        return Err(mismatch(
            "general purpose flags",
            format!("{:#06x}", entry.flags()),
            format!("{flags:#06x}"),
        ));
    }

    let mut compressed = u64::from(compressed32);
    let mut uncompressed = u64::from(uncompressed32);
    let mut zip64 = false;
    let fields = extra_fields(extra).map_err(|reason| UnpackError::Malformed {
        offset,
        reason: format!("entry {:?}: {reason}", entry.name),
    })?;
    if let Some((_, data)) = fields.iter().find(|(tag, _)| *tag == EXTRA_ZIP64) {
        zip64 = true;
        let mut z = Le::new(data, 0);
        let short = || UnpackError::Malformed {
            offset,
            reason: format!("entry {:?}: local zip64 extra field too short", entry.name),
        };
        if uncompressed32 == u32::MAX {
            uncompressed = z.u64().ok_or_else(short)?;
        }
        if compressed32 == u32::MAX {
            compressed = z.u64().ok_or_else(short)?;
        }
    }
    // With a data descriptor the local values may be zero; otherwise they must be the central ones.
    let deferred = flags & FLAG_DATA_DESCRIPTOR != 0;
    let agrees = |local: u64, central: u64| local == central || (deferred && local == 0);
    if !agrees(u64::from(crc), u64::from(entry.crc32)) {
        return Err(mismatch(
            "CRC-32",
            format!("{:08x}", entry.crc32),
            format!("{crc:08x}"),
        ));
    }
    if !agrees(compressed, entry.compressed_size) {
        return Err(mismatch(
            "compressed size",
            entry.compressed_size.to_string(),
            compressed.to_string(),
        ));
    }
    if !agrees(uncompressed, entry.uncompressed_size) {
        return Err(mismatch(
            "uncompressed size",
            entry.uncompressed_size.to_string(),
            uncompressed.to_string(),
        ));
    }
    input.consume(LOCAL_HEADER_LEN + name_len + extra_len);
    Ok(zip64)
}

/// Reads the data descriptor after an entry's data: with or without its signature, with 32- or
/// 64-bit sizes, whichever form holds exactly the central directory's values within `room` bytes.
fn read_data_descriptor<R: Read>(
    input: &mut Input<R>,
    entry: &IndexEntry,
    room: u64,
    zip64: bool,
) -> Result<(), UnpackError> {
    let n = room.min(24) as usize;
    let bytes = input.need(n)?;
    let forms: [(bool, bool); 4] = if zip64 {
        [(true, true), (true, false), (false, true), (false, false)]
    } else {
        [(true, false), (true, true), (false, false), (false, true)]
    };
    let mut found = None;
    for (signed, wide) in forms {
        let mut d = Le::new(bytes, 0);
        if signed && d.u32() != Some(u64::from(DATA_DESCRIPTOR_SIG)) {
            continue;
        }
        let crc = d.u32();
        let (compressed, uncompressed) = if wide {
            (d.u64(), d.u64())
        } else {
            (d.u32(), d.u32())
        };
        if crc == Some(u64::from(entry.crc32))
            && compressed == Some(entry.compressed_size)
            && uncompressed == Some(entry.uncompressed_size)
        {
            found = Some(d.pos());
            break;
        }
    }
    match found {
        Some(len) => {
            input.consume(len);
            Ok(())
        }
        None => Err(UnpackError::HeaderMismatch {
            name: entry.name.clone(),
            field: "data descriptor",
            central: format!(
                "CRC {:08x}, {} compressed, {} uncompressed bytes",
                entry.crc32, entry.compressed_size, entry.uncompressed_size
            ),
            local: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        }),
    }
}

/// Where the current entry's content goes.
enum Sink {
    File(fs_err::File),
    Link(Vec<u8>),
    Nothing,
}

struct Current {
    index: usize,
    sink: Sink,
    crc: crc32fast::Hasher,
    written: u64,
    ended: bool,
}

/// A directory entry whose mode and time are applied once everything is written.
struct DirFixup {
    path: String,
    mode: Option<u32>,
    mtime: i64,
}

/// The writing side: creates directories, files and symlinks, inflates, counts and checks.
struct Writer<'a> {
    entries: &'a [IndexEntry],
    dest: &'a Path,
    options: &'a UnpackOptions,
    /// Relative paths known to be real directories (created here or found as directories).
    dirs: HashSet<String>,
    fixups: Vec<DirFixup>,
    summary: UnpackSummary,
    total: u64,
    inflater: Decompress,
    out: Vec<u8>,
    current: Option<Current>,
}

fn fs_error(entry: &IndexEntry) -> impl Fn(io::Error) -> UnpackError + '_ {
    |source| UnpackError::Filesystem {
        name: entry.name.clone(),
        source,
    }
}

fn file_time(seconds: i64) -> FileTime {
    FileTime::from_unix_time(seconds, 0)
}

impl<'a> Writer<'a> {
    fn new(entries: &'a [IndexEntry], dest: &'a Path, options: &'a UnpackOptions) -> Self {
        Self {
            entries,
            dest,
            options,
            dirs: HashSet::new(),
            fixups: Vec::new(),
            summary: UnpackSummary::default(),
            total: 0,
            inflater: Decompress::new(false),
            // Allocated by the first deflated entry: archives of stored entries never need it.
            out: Vec::new(),
            current: None,
        }
    }

    /// Processes messages until the reader finishes (`Some`) or goes away (`None`).
    fn run(
        mut self,
        from_reader: Receiver<Msg>,
        pool: Sender<Vec<u8>>,
    ) -> Result<Option<UnpackSummary>, UnpackError> {
        for msg in from_reader {
            if let Some(summary) = self.handle(msg, &pool)? {
                return Ok(Some(summary));
            }
        }
        Ok(None)
    }

    /// Processes one message, returning the buffer to `pool`; the summary once it finished.
    fn handle(
        &mut self,
        msg: Msg,
        pool: &Sender<Vec<u8>>,
    ) -> Result<Option<UnpackSummary>, UnpackError> {
        match msg {
            Msg::Chunk { buf, ops } => {
                for op in ops {
                    match op {
                        Op::Entry(i) => {
                            self.finish_entry()?;
                            self.start_entry(i)?;
                        }
                        Op::Data(range) => self.feed(&buf[range])?,
                    }
                }
                // The reader may have finished; then nobody needs the buffer.
                let _ = pool.send(buf);
                Ok(None)
            }
            Msg::Finish => {
                self.finish_entry()?;
                self.apply_directory_fixups()?;
                Ok(Some(self.summary))
            }
        }
    }

    fn entry(&self, i: usize) -> Result<&'a IndexEntry, UnpackError> {
        self.entries.get(i).ok_or(UnpackError::Internal {
            reason: "entry index out of range",
        })
    }

    fn start_entry(&mut self, i: usize) -> Result<(), UnpackError> {
        let entry = self.entry(i)?;
        let path = entry.path();
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.ensure_dirs(parent, entry)?;
        }
        let sink = match entry.kind {
            IndexEntryKind::Directory => {
                self.ensure_dirs(path, entry)?;
                self.fixups.push(DirFixup {
                    path: path.to_owned(),
                    mode: entry.mode,
                    mtime: entry.mtime,
                });
                Sink::Nothing
            }
            IndexEntryKind::File => {
                // Stored modes are applied with fchmod once written; until then keep it private.
                let initial = if entry.mode.is_some() { 0o600 } else { 0o644 };
                let file = fs_err::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(initial)
                    .open(self.dest.join(path))
                    .map_err(fs_error(entry))?;
                Sink::File(file)
            }
            IndexEntryKind::Symlink => Sink::Link(Vec::new()),
        };
        if entry.compression == Method::Deflate && self.out.is_empty() {
            self.out = vec![0; INFLATE_BUF_LEN];
        }
        self.inflater.reset(false);
        self.current = Some(Current {
            index: i,
            sink,
            crc: crc32fast::Hasher::new(),
            written: 0,
            ended: false,
        });
        Ok(())
    }

    /// Makes sure `rel` and its ancestors are real directories, creating the missing ones.
    fn ensure_dirs(&mut self, rel: &str, entry: &IndexEntry) -> Result<(), UnpackError> {
        if self.dirs.contains(rel) {
            return Ok(());
        }
        let ends = rel
            .match_indices('/')
            .map(|(at, _)| at)
            .chain(std::iter::once(rel.len()));
        for end in ends {
            let prefix = &rel[..end];
            if self.dirs.contains(prefix) {
                continue;
            }
            let full = self.dest.join(prefix);
            match std::fs::DirBuilder::new().mode(0o755).create(&full) {
                Ok(()) => self.summary.dirs += 1,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let meta = fs_err::symlink_metadata(&full).map_err(fs_error(entry))?;
                    if meta.file_type().is_symlink() {
                        return Err(UnpackError::ThroughSymlink {
                            name: entry.name.clone(),
                            link: prefix.to_owned(),
                        });
                    }
                    if !meta.is_dir() {
                        return Err(UnpackError::PathConflict {
                            name: entry.name.clone(),
                            other: prefix.to_owned(),
                        });
                    }
                }
                Err(error) => {
                    return Err(UnpackError::Filesystem {
                        name: entry.name.clone(),
                        source: io::Error::new(
                            error.kind(),
                            format!("failed to create directory {}: {error}", full.display()),
                        ),
                    });
                }
            }
            self.dirs.insert(prefix.to_owned());
        }
        Ok(())
    }

    fn feed(&mut self, input: &[u8]) -> Result<(), UnpackError> {
        let Writer {
            entries,
            options,
            total,
            inflater,
            out,
            current,
            ..
        } = self;
        let Some(current) = current.as_mut() else {
            return Err(UnpackError::Internal {
                reason: "data before any entry",
            });
        };
        let entry = entries.get(current.index).ok_or(UnpackError::Internal {
            reason: "entry index out of range",
        })?;
        let max_total = options.max_total_bytes;
        match entry.compression {
            Method::Stored => emit(current, entry, total, max_total, input),
            Method::Deflate => {
                let mut input = input;
                loop {
                    if current.ended {
                        if input.is_empty() {
                            return Ok(());
                        }
                        return Err(UnpackError::CorruptData {
                            name: entry.name.clone(),
                            reason: "bytes follow the end of the deflate stream".to_owned(),
                        });
                    }
                    let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
                    let status = inflater
                        .decompress(input, out, FlushDecompress::None)
                        .map_err(|error| UnpackError::CorruptData {
                            name: entry.name.clone(),
                            reason: error.to_string(),
                        })?;
                    let consumed = (inflater.total_in() - in_before) as usize;
                    let produced = (inflater.total_out() - out_before) as usize;
                    input = &input[consumed..];
                    emit(current, entry, total, max_total, &out[..produced])?;
                    if status == Status::StreamEnd {
                        current.ended = true;
                        continue;
                    }
                    if input.is_empty() && produced < out.len() {
                        // All input taken and no output pending.
                        return Ok(());
                    }
                    if consumed == 0 && produced == 0 {
                        if input.is_empty() {
                            return Ok(());
                        }
                        return Err(UnpackError::CorruptData {
                            name: entry.name.clone(),
                            reason: "the decompressor makes no progress".to_owned(),
                        });
                    }
                }
            }
        }
    }

    /// Completes the current entry: the end of its deflate stream, its size and CRC, then its
    /// mode, time or symlink.
    fn finish_entry(&mut self) -> Result<(), UnpackError> {
        let Some(mut current) = self.current.take() else {
            return Ok(());
        };
        let entry = self.entry(current.index)?;
        if entry.compression == Method::Deflate {
            while !current.ended {
                let out_before = self.inflater.total_out();
                let status = self
                    .inflater
                    .decompress(&[], &mut self.out, FlushDecompress::Finish)
                    .map_err(|error| UnpackError::CorruptData {
                        name: entry.name.clone(),
                        reason: error.to_string(),
                    })?;
                let produced = (self.inflater.total_out() - out_before) as usize;
                emit(
                    &mut current,
                    entry,
                    &mut self.total,
                    self.options.max_total_bytes,
                    &self.out[..produced],
                )?;
                if status == Status::StreamEnd {
                    current.ended = true;
                } else if produced == 0 {
                    return Err(UnpackError::CorruptData {
                        name: entry.name.clone(),
                        reason: "the deflate stream ends before its last block".to_owned(),
                    });
                }
            }
        }
        if current.written != entry.uncompressed_size {
            return Err(UnpackError::SizeMismatch {
                name: entry.name.clone(),
                declared: entry.uncompressed_size,
                actual: current.written,
            });
        }
        let crc = current.crc.finalize();
        if crc != entry.crc32 {
            return Err(UnpackError::CrcMismatch {
                name: entry.name.clone(),
                declared: entry.crc32,
                actual: crc,
            });
        }
        let restore = self.options.restore_mtimes;
        match current.sink {
            Sink::File(file) => {
                if let Some(mode) = entry.mode {
                    file.set_permissions(std::fs::Permissions::from_mode(mode))
                        .map_err(fs_error(entry))?;
                }
                if restore {
                    filetime::set_file_handle_times(
                        file.file(),
                        None,
                        Some(file_time(entry.mtime)),
                    )
                    .map_err(|error| UnpackError::Filesystem {
                        name: entry.name.clone(),
                        source: io::Error::new(
                            error.kind(),
                            format!(
                                "failed to set the time of {}: {error}",
                                file.path().display()
                            ),
                        ),
                    })?;
                }
                self.summary.files += 1;
                self.summary.bytes += current.written;
            }
            Sink::Link(target) => {
                if let Some(reason) = link_target_problem(entry.path(), &target) {
                    return Err(UnpackError::UnsafeSymlink {
                        name: entry.name.clone(),
                        target: String::from_utf8_lossy(&target).into_owned(),
                        reason,
                    });
                }
                let link = self.dest.join(entry.path());
                fs_err::os::unix::fs::symlink(OsStr::from_bytes(&target), &link)
                    .map_err(fs_error(entry))?;
                if restore {
                    let time = file_time(entry.mtime);
                    filetime::set_symlink_file_times(&link, time, time).map_err(|error| {
                        UnpackError::Filesystem {
                            name: entry.name.clone(),
                            source: io::Error::new(
                                error.kind(),
                                format!("failed to set the time of {}: {error}", link.display()),
                            ),
                        }
                    })?;
                }
                self.summary.symlinks += 1;
            }
            Sink::Nothing => {}
        }
        Ok(())
    }

    /// Applies directory modes and times, deepest first, once all content is written (so a
    /// read-only directory can still be filled, and writing does not change restored times).
    fn apply_directory_fixups(&mut self) -> Result<(), UnpackError> {
        let mut fixups = mem::take(&mut self.fixups);
        fixups.sort_by_key(|fixup| Reverse(fixup.path.matches('/').count()));
        for fixup in fixups {
            let full = self.dest.join(&fixup.path);
            let fail = |source| UnpackError::Filesystem {
                name: format!("{}/", fixup.path),
                source,
            };
            if let Some(mode) = fixup.mode {
                fs_err::set_permissions(&full, std::fs::Permissions::from_mode(mode))
                    .map_err(fail)?;
            }
            if self.options.restore_mtimes {
                filetime::set_file_mtime(&full, file_time(fixup.mtime)).map_err(|error| {
                    fail(io::Error::new(
                        error.kind(),
                        format!("failed to set the time of {}: {error}", full.display()),
                    ))
                })?;
            }
        }
        Ok(())
    }
}

/// Counts, checks, hashes and writes a piece of an entry's content.
fn emit(
    current: &mut Current,
    entry: &IndexEntry,
    total: &mut u64,
    max_total: u64,
    bytes: &[u8],
) -> Result<(), UnpackError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let n = bytes.len() as u64;
    let written = current.written + n;
    if written > entry.uncompressed_size {
        return Err(UnpackError::SizeMismatch {
            name: entry.name.clone(),
            declared: entry.uncompressed_size,
            actual: written,
        });
    }
    if total.saturating_add(n) > max_total {
        return Err(UnpackError::TooLarge {
            name: entry.name.clone(),
            max: max_total,
        });
    }
    current.crc.update(bytes);
    match &mut current.sink {
        Sink::File(file) => file.write_all(bytes).map_err(fs_error(entry))?,
        Sink::Link(target) => target.extend_from_slice(bytes),
        Sink::Nothing => {}
    }
    current.written = written;
    *total += n;
    Ok(())
}
