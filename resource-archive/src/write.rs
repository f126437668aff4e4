//! The zip writer: streams the entries of a plan, checked already, into an archive over any
//! [`std::io::Write`], in constant memory and in 1 MiB writes.
//!
//! - Files up to 1 MiB are read whole before their header is written, so their local header
//!   carries CRC and sizes. Larger files are streamed: their local header has the
//!   data-descriptor flag, zero CRC and sizes, and a signed data descriptor follows the data.
//!   The choice depends only on the file size, so it is deterministic too.
//! - Deflate uses `miniz_oxide` directly, at a fixed level, so deflated bytes depend neither on
//!   CPU features nor on the `flate2` backend a build happens to select.
//! - Zip64 appears only when needed (see the crate documentation).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use miniz_oxide::DataFormat;
use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus, compress};

use crate::error::PackError;
use crate::format::{
    CENTRAL_HEADER_LEN, CENTRAL_HEADER_SIG, DATA_DESCRIPTOR_SIG, DOS_DIRECTORY,
    END_OF_CENTRAL_DIR_LEN, END_OF_CENTRAL_DIR_SIG, EXTRA_EXTENDED_TIMESTAMP, EXTRA_ZIP64,
    FLAG_DATA_DESCRIPTOR, FLAG_UTF8, LOCAL_HEADER_LEN, LOCAL_HEADER_SIG, METHOD_DEFLATE,
    METHOD_STORED, VERSION_MADE_BY_UNIX, VERSION_NEEDED_DEFAULT, VERSION_NEEDED_ZIP64,
    ZIP64_END_OF_CENTRAL_DIR_LEN, ZIP64_END_OF_CENTRAL_DIR_SIG, ZIP64_LOCATOR_LEN,
    ZIP64_LOCATOR_SIG, unix_to_dos,
};
use crate::options::Compression;
use crate::walk::{PlanEntry, PlanEntryKind};

/// The size of the output buffer and of every write but the last one, and the largest file
/// read whole before its header is written.
const BUFFER_LEN: usize = 1 << 20;

/// Files up to this size carry CRC and sizes in their local header; larger ones are streamed
/// with a data descriptor.
const WHOLE_FILE_LIMIT: u64 = BUFFER_LEN as u64;

/// The largest value a 32-bit size or offset field holds; the value itself means "see zip64".
const ZIP32_LIMIT: u64 = 0xffff_ffff;

/// The largest entry count the end of central directory record holds; the value itself means
/// "see zip64".
const ZIP32_ENTRY_LIMIT: u64 = 0xffff;

/// What [`PackPlan::write`](crate::PackPlan::write) wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteSummary {
    /// The number of entries.
    pub entries: u64,
    /// The length of the archive in bytes.
    pub archive_len: u64,
    /// Whether the archive needed the zip64 end records.
    pub zip64: bool,
}

/// Writes the archive of `entries` (in this order) to `out` and flushes it, reading each file's
/// content from `source_path(entry)`.
pub(crate) fn write_archive<W: Write>(
    out: W,
    compression: Compression,
    entries: &[PlanEntry],
    source_path: impl Fn(&PlanEntry) -> PathBuf,
) -> Result<WriteSummary, PackError> {
    let mut writer = ArchiveWriter::new(out, compression);
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        records.push(writer.add(entry, || source_path(entry))?);
    }
    writer.finish(entries, &records)
}

/// What the central directory needs about an entry once its data is written.
#[derive(Debug, Clone, Copy)]
struct WrittenEntry {
    offset: u64,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    /// Whether the local header carries zip64 sizes; the central header then does too.
    zip64_sizes: bool,
}

impl WrittenEntry {
    fn version_needed(&self) -> u16 {
        if self.zip64_sizes
            || self.offset >= ZIP32_LIMIT
            || self.compressed >= ZIP32_LIMIT
            || self.uncompressed >= ZIP32_LIMIT
        {
            VERSION_NEEDED_ZIP64
        } else {
            VERSION_NEEDED_DEFAULT
        }
    }
}

/// The writer state for one archive: the output buffer, scratch buffers and the compressor,
/// all allocated once and reused for every entry.
struct ArchiveWriter<W> {
    out: OutputBuffer<W>,
    /// Header bytes being encoded.
    header: Vec<u8>,
    /// A whole small file, or a chunk of a large file being deflated.
    scratch: Box<[u8]>,
    /// The deflated form of a whole small file.
    deflated: Vec<u8>,
    deflater: Option<Box<CompressorOxide>>,
}

impl<W: Write> ArchiveWriter<W> {
    fn new(out: W, compression: Compression) -> Self {
        let deflater = match compression {
            Compression::Stored => None,
            Compression::Deflate { level } => {
                let mut deflater = Box::<CompressorOxide>::default();
                // Validated by `plan`; `min` only keeps the conversion total.
                deflater.set_format_and_level(DataFormat::Raw, level.min(9) as u8);
                Some(deflater)
            }
        };
        Self {
            out: OutputBuffer::new(out),
            header: Vec::with_capacity(512),
            scratch: vec![0; BUFFER_LEN].into_boxed_slice(),
            deflated: Vec::new(),
            deflater,
        }
    }

    fn add(
        &mut self,
        entry: &PlanEntry,
        source: impl FnOnce() -> PathBuf,
    ) -> Result<WrittenEntry, PackError> {
        match &entry.kind {
            PlanEntryKind::Directory => self.add_whole(entry, METHOD_STORED, 0, 0, None),
            PlanEntryKind::Symlink { target } => {
                let target = target.as_bytes();
                let crc = crc32fast::hash(target);
                self.add_whole(entry, METHOD_STORED, crc, target.len() as u64, Some(target))
            }
            PlanEntryKind::File { size } if *size <= WHOLE_FILE_LIMIT => {
                self.add_small_file(entry, *size, &source())
            }
            PlanEntryKind::File { size } => self.add_streamed_file(entry, *size, &source()),
        }
    }

    /// Writes an entry whose CRC and sizes are known before its header. `data` is `None` for
    /// the data held in `self.scratch` (stored) or `self.deflated` (deflated).
    fn add_whole(
        &mut self,
        entry: &PlanEntry,
        method: u16,
        crc: u32,
        uncompressed: u64,
        data: Option<&[u8]>,
    ) -> Result<WrittenEntry, PackError> {
        let data = match data {
            Some(data) => data,
            None if method == METHOD_DEFLATE => &self.deflated[..],
            None => self
                .scratch
                .get(..uncompressed as usize)
                .unwrap_or_default(),
        };
        let written = WrittenEntry {
            offset: self.out.position,
            flags: name_flags(&entry.name),
            method,
            crc,
            compressed: data.len() as u64,
            uncompressed,
            zip64_sizes: data.len() as u64 >= ZIP32_LIMIT || uncompressed >= ZIP32_LIMIT,
        };
        encode_local_header(&mut self.header, entry, &written);
        self.out.put(&self.header).map_err(output_error)?;
        self.out.put(data).map_err(output_error)?;
        Ok(written)
    }

    /// Reads a file of at most [`WHOLE_FILE_LIMIT`] bytes whole, so its header carries CRC and
    /// sizes, and deflates it when that makes it smaller.
    fn add_small_file(
        &mut self,
        entry: &PlanEntry,
        size: u64,
        path: &Path,
    ) -> Result<WrittenEntry, PackError> {
        let mut file = open(path)?;
        let len = size as usize;
        let content = self.scratch.get_mut(..len).unwrap_or_default();
        read_exactly(&mut file, content, path)?;
        expect_end(&mut file, path)?;
        check_unchanged(&file, entry, size, path)?;
        let crc = crc32fast::hash(content);
        let mut method = METHOD_STORED;
        if let Some(deflater) = self.deflater.as_deref_mut()
            && len > 0
        {
            deflate_whole(deflater, content, &mut self.deflated, path)?;
            if self.deflated.len() < len {
                method = METHOD_DEFLATE;
            }
        }
        self.add_whole(entry, method, crc, size, None)
    }

    /// Streams a file larger than [`WHOLE_FILE_LIMIT`] through the output buffer, followed by a
    /// data descriptor.
    fn add_streamed_file(
        &mut self,
        entry: &PlanEntry,
        size: u64,
        path: &Path,
    ) -> Result<WrittenEntry, PackError> {
        let mut file = open(path)?;
        let method = if self.deflater.is_some() {
            METHOD_DEFLATE
        } else {
            METHOD_STORED
        };
        // Deflate can expand incompressible data slightly (stored blocks cost 5 bytes per
        // 64 KiB), so a deflated member switches to zip64 sizes with a wide margin.
        let worst_case = if method == METHOD_DEFLATE {
            size + size / 64 + 4096
        } else {
            size
        };
        let mut written = WrittenEntry {
            offset: self.out.position,
            flags: name_flags(&entry.name) | FLAG_DATA_DESCRIPTOR,
            method,
            crc: 0,
            compressed: 0,
            uncompressed: size,
            zip64_sizes: worst_case >= ZIP32_LIMIT,
        };
        encode_local_header(&mut self.header, entry, &written);
        self.out.put(&self.header).map_err(output_error)?;
        let data_start = self.out.position;

        let mut crc = crc32fast::Hasher::new();
        match self.deflater.as_deref_mut() {
            None => copy_stored(&mut file, size, &mut self.out, &mut crc, path)?,
            Some(deflater) => copy_deflated(
                &mut file,
                size,
                deflater,
                &mut self.scratch,
                &mut self.out,
                &mut crc,
                path,
            )?,
        }
        expect_end(&mut file, path)?;
        check_unchanged(&file, entry, size, path)?;
        written.crc = crc.finalize();
        written.compressed = self.out.position - data_start;
        if !written.zip64_sizes && written.compressed >= ZIP32_LIMIT {
            return Err(PackError::Deflate {
                path: path.to_owned(),
                reason: "the deflated data outgrew the 4 GiB its header allowed for",
            });
        }

        self.header.clear();
        put_u32(&mut self.header, DATA_DESCRIPTOR_SIG);
        put_u32(&mut self.header, written.crc);
        if written.zip64_sizes {
            put_u64(&mut self.header, written.compressed);
            put_u64(&mut self.header, written.uncompressed);
        } else {
            put_u32(&mut self.header, written.compressed as u32);
            put_u32(&mut self.header, written.uncompressed as u32);
        }
        self.out.put(&self.header).map_err(output_error)?;
        Ok(written)
    }

    /// Writes the central directory and end records, then flushes the output.
    fn finish(
        mut self,
        entries: &[PlanEntry],
        records: &[WrittenEntry],
    ) -> Result<WriteSummary, PackError> {
        let directory_start = self.out.position;
        for (entry, written) in entries.iter().zip(records) {
            encode_central_header(&mut self.header, entry, written);
            self.out.put(&self.header).map_err(output_error)?;
        }
        let directory_end = self.out.position;
        let directory_len = directory_end - directory_start;
        let count = entries.len() as u64;
        let zip64 = count >= ZIP32_ENTRY_LIMIT
            || directory_len >= ZIP32_LIMIT
            || directory_start >= ZIP32_LIMIT;

        let header = &mut self.header;
        header.clear();
        if zip64 {
            put_u32(header, ZIP64_END_OF_CENTRAL_DIR_SIG);
            // The record's size excludes its signature and this size field.
            put_u64(header, (ZIP64_END_OF_CENTRAL_DIR_LEN - 12) as u64);
            put_u16(header, VERSION_MADE_BY_UNIX);
            put_u16(header, VERSION_NEEDED_ZIP64);
            put_u32(header, 0); // this disk
            put_u32(header, 0); // disk where the central directory starts
            put_u64(header, count); // entries on this disk
            put_u64(header, count);
            put_u64(header, directory_len);
            put_u64(header, directory_start);
            put_u32(header, ZIP64_LOCATOR_SIG);
            put_u32(header, 0); // disk holding the zip64 end record
            put_u64(header, directory_end);
            put_u32(header, 1); // total number of disks
        }
        put_u32(header, END_OF_CENTRAL_DIR_SIG);
        put_u16(header, 0); // this disk
        put_u16(header, 0); // disk where the central directory starts
        let count16 = count.min(ZIP32_ENTRY_LIMIT) as u16;
        put_u16(header, count16);
        put_u16(header, count16);
        put_u32(header, directory_len.min(ZIP32_LIMIT) as u32);
        put_u32(header, directory_start.min(ZIP32_LIMIT) as u32);
        put_u16(header, 0); // comment length
        let zip64_len = if zip64 {
            ZIP64_END_OF_CENTRAL_DIR_LEN + ZIP64_LOCATOR_LEN
        } else {
            0
        };
        debug_assert_eq!(header.len(), zip64_len + END_OF_CENTRAL_DIR_LEN);
        self.out.put(&self.header).map_err(output_error)?;
        let archive_len = self.out.position;
        self.out.finish().map_err(output_error)?;
        Ok(WriteSummary {
            entries: count,
            archive_len,
            zip64,
        })
    }
}

/// Buffers the output so that it receives only full 1 MiB writes, the last one excepted, and
/// lets file data be read straight into the buffer.
struct OutputBuffer<W> {
    inner: W,
    buffer: Box<[u8]>,
    filled: usize,
    /// Bytes accepted so far, buffered or written: the offset of the next byte in the archive.
    position: u64,
}

impl<W: Write> OutputBuffer<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            buffer: vec![0; BUFFER_LEN].into_boxed_slice(),
            filled: 0,
            position: 0,
        }
    }

    /// The free part of the buffer, never empty: a full buffer is written out first.
    fn spare(&mut self) -> io::Result<&mut [u8]> {
        if self.filled == self.buffer.len() {
            self.drain()?;
        }
        Ok(self.buffer.get_mut(self.filled..).unwrap_or_default())
    }

    /// Marks `len` bytes at the start of [`spare`](Self::spare) as filled.
    fn commit(&mut self, len: usize) {
        self.filled += len;
        self.position += len as u64;
    }

    fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let spare = self.spare()?;
            let len = spare.len().min(bytes.len());
            let (now, later) = bytes.split_at(len);
            spare[..len].copy_from_slice(now);
            self.commit(len);
            bytes = later;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        if self.filled > 0 {
            self.inner.write_all(&self.buffer[..self.filled])?;
            self.filled = 0;
        }
        Ok(())
    }

    /// Writes what is buffered, flushes and hands the output back.
    fn finish(mut self) -> io::Result<W> {
        self.drain()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

pub(crate) fn output_error(source: io::Error) -> PackError {
    PackError::Output { source }
}

fn name_flags(name: &str) -> u16 {
    if name.is_ascii() { 0 } else { FLAG_UTF8 }
}

fn put_u16(buf: &mut Vec<u8>, value: u16) {
    buf.extend_from_slice(&value.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, value: u32) {
    buf.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(buf: &mut Vec<u8>, value: u64) {
    buf.extend_from_slice(&value.to_le_bytes());
}

/// A 32-bit size or offset field: the value, or 0xFFFFFFFF when zip64 carries it.
fn zip32(value: u64, in_zip64: bool) -> u32 {
    if in_zip64 { u32::MAX } else { value as u32 }
}

/// The extended-timestamp extra field with the modification time only, the same in the local
/// and the central header. It holds signed 32-bit seconds, so later times are clamped.
fn put_extended_timestamp(buf: &mut Vec<u8>, mtime: i64) {
    put_u16(buf, EXTRA_EXTENDED_TIMESTAMP);
    put_u16(buf, 5);
    buf.push(1); // flags: modification time present
    let seconds = mtime.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    buf.extend_from_slice(&seconds.to_le_bytes());
}

fn encode_local_header(buf: &mut Vec<u8>, entry: &PlanEntry, written: &WrittenEntry) {
    let streamed = written.flags & FLAG_DATA_DESCRIPTOR != 0;
    let (time, date) = unix_to_dos(entry.mtime);
    buf.clear();
    put_u32(buf, LOCAL_HEADER_SIG);
    put_u16(buf, written.version_needed());
    put_u16(buf, written.flags);
    put_u16(buf, written.method);
    put_u16(buf, time);
    put_u16(buf, date);
    if streamed {
        // CRC and sizes follow the data in the data descriptor.
        put_u32(buf, 0);
        let size = if written.zip64_sizes { u32::MAX } else { 0 };
        put_u32(buf, size);
        put_u32(buf, size);
    } else {
        put_u32(buf, written.crc);
        put_u32(buf, zip32(written.compressed, written.zip64_sizes));
        put_u32(buf, zip32(written.uncompressed, written.zip64_sizes));
    }
    put_u16(buf, entry.name.len() as u16);
    let extra_len = if written.zip64_sizes { 4 + 16 } else { 0 } + 9;
    put_u16(buf, extra_len);
    debug_assert_eq!(buf.len(), LOCAL_HEADER_LEN);
    buf.extend_from_slice(entry.name.as_bytes());
    if written.zip64_sizes {
        // The local zip64 field holds both sizes, zero while they follow the data.
        put_u16(buf, EXTRA_ZIP64);
        put_u16(buf, 16);
        let (uncompressed, compressed) = if streamed {
            (0, 0)
        } else {
            (written.uncompressed, written.compressed)
        };
        put_u64(buf, uncompressed);
        put_u64(buf, compressed);
    }
    put_extended_timestamp(buf, entry.mtime);
}

fn encode_central_header(buf: &mut Vec<u8>, entry: &PlanEntry, written: &WrittenEntry) {
    let (time, date) = unix_to_dos(entry.mtime);
    let uncompressed_in_zip64 = written.zip64_sizes || written.uncompressed >= ZIP32_LIMIT;
    let compressed_in_zip64 = written.zip64_sizes || written.compressed >= ZIP32_LIMIT;
    let offset_in_zip64 = written.offset >= ZIP32_LIMIT;
    let zip64_len = 8
        * (u16::from(uncompressed_in_zip64)
            + u16::from(compressed_in_zip64)
            + u16::from(offset_in_zip64));
    let zip64_field_len = if zip64_len > 0 { 4 + zip64_len } else { 0 };
    let mut external = entry.unix_mode() << 16;
    if entry.kind == PlanEntryKind::Directory {
        external |= DOS_DIRECTORY;
    }

    buf.clear();
    put_u32(buf, CENTRAL_HEADER_SIG);
    put_u16(buf, VERSION_MADE_BY_UNIX);
    put_u16(buf, written.version_needed());
    put_u16(buf, written.flags);
    put_u16(buf, written.method);
    put_u16(buf, time);
    put_u16(buf, date);
    put_u32(buf, written.crc);
    put_u32(buf, zip32(written.compressed, compressed_in_zip64));
    put_u32(buf, zip32(written.uncompressed, uncompressed_in_zip64));
    put_u16(buf, entry.name.len() as u16);
    put_u16(buf, zip64_field_len + 9);
    put_u16(buf, 0); // comment length
    put_u16(buf, 0); // disk where the entry starts
    put_u16(buf, 0); // internal attributes
    put_u32(buf, external);
    put_u32(buf, zip32(written.offset, offset_in_zip64));
    debug_assert_eq!(buf.len(), CENTRAL_HEADER_LEN);
    buf.extend_from_slice(entry.name.as_bytes());
    if zip64_len > 0 {
        // Only the fields whose 32-bit form overflowed, in the order the format fixes.
        put_u16(buf, EXTRA_ZIP64);
        put_u16(buf, zip64_len);
        if uncompressed_in_zip64 {
            put_u64(buf, written.uncompressed);
        }
        if compressed_in_zip64 {
            put_u64(buf, written.compressed);
        }
        if offset_in_zip64 {
            put_u64(buf, written.offset);
        }
    }
    put_extended_timestamp(buf, entry.mtime);
}

fn open(path: &Path) -> Result<File, PackError> {
    File::open(path).map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })
}

/// One `read`, retried when interrupted by a signal.
fn read_some(file: &mut File, buf: &mut [u8], path: &Path) -> Result<usize, PackError> {
    loop {
        match file.read(buf) {
            Ok(len) => return Ok(len),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(PackError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Fills `buf`; reaching the end of the file first means it shrank since planning.
fn read_exactly(file: &mut File, buf: &mut [u8], path: &Path) -> Result<(), PackError> {
    let mut filled = 0;
    while filled < buf.len() {
        let len = read_some(file, &mut buf[filled..], path)?;
        if len == 0 {
            return Err(PackError::ChangedWhilePacking {
                path: path.to_owned(),
            });
        }
        filled += len;
    }
    Ok(())
}

/// Checks that the file ends where the plan said: one more byte means it grew.
fn expect_end(file: &mut File, path: &Path) -> Result<(), PackError> {
    let mut probe = [0; 1];
    if read_some(file, &mut probe, path)? == 0 {
        Ok(())
    } else {
        Err(PackError::ChangedWhilePacking {
            path: path.to_owned(),
        })
    }
}

/// Checks, after reading, that the open file still has the planned size and modification time,
/// which catches same-size rewrites as well.
fn check_unchanged(
    file: &File,
    entry: &PlanEntry,
    size: u64,
    path: &Path,
) -> Result<(), PackError> {
    let metadata = file.metadata().map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })?;
    if metadata.len() == size && metadata.mtime() == entry.source_mtime {
        Ok(())
    } else {
        Err(PackError::ChangedWhilePacking {
            path: path.to_owned(),
        })
    }
}

/// Reads `size` bytes straight into the output buffer, so stored data is copied only once.
fn copy_stored<W: Write>(
    file: &mut File,
    size: u64,
    out: &mut OutputBuffer<W>,
    crc: &mut crc32fast::Hasher,
    path: &Path,
) -> Result<(), PackError> {
    let mut remaining = size;
    while remaining > 0 {
        let spare = out.spare().map_err(output_error)?;
        let want = spare
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let chunk = &mut spare[..want];
        let len = read_some(file, chunk, path)?;
        if len == 0 {
            return Err(PackError::ChangedWhilePacking {
                path: path.to_owned(),
            });
        }
        crc.update(&chunk[..len]);
        out.commit(len);
        remaining -= len as u64;
    }
    Ok(())
}

/// Reads `size` bytes in chunks and deflates them straight into the output buffer.
fn copy_deflated<W: Write>(
    file: &mut File,
    size: u64,
    deflater: &mut CompressorOxide,
    scratch: &mut [u8],
    out: &mut OutputBuffer<W>,
    crc: &mut crc32fast::Hasher,
    path: &Path,
) -> Result<(), PackError> {
    deflater.reset();
    let mut remaining = size;
    while remaining > 0 {
        let want = scratch
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let chunk = &mut scratch[..want];
        let len = read_some(file, chunk, path)?;
        if len == 0 {
            return Err(PackError::ChangedWhilePacking {
                path: path.to_owned(),
            });
        }
        crc.update(&chunk[..len]);
        deflate_into(deflater, &chunk[..len], TDEFLFlush::None, out, path)?;
        remaining -= len as u64;
    }
    deflate_into(deflater, &[], TDEFLFlush::Finish, out, path)
}

/// Feeds `input` to the compressor, writing its output into the output buffer. With
/// [`TDEFLFlush::Finish`] it also ends the deflate stream.
fn deflate_into<W: Write>(
    deflater: &mut CompressorOxide,
    mut input: &[u8],
    flush: TDEFLFlush,
    out: &mut OutputBuffer<W>,
    path: &Path,
) -> Result<(), PackError> {
    let mut guard = DeflateGuard::new(path, flush == TDEFLFlush::Finish);
    loop {
        let spare = out.spare().map_err(output_error)?;
        let (status, consumed, produced) = compress(deflater, input, spare, flush);
        out.commit(produced);
        input = input.get(consumed..).unwrap_or_default();
        if guard.done(status, consumed, produced, input.is_empty())? {
            return Ok(());
        }
    }
}

/// Deflates a whole small file into `deflated`, growing it as needed.
fn deflate_whole(
    deflater: &mut CompressorOxide,
    mut input: &[u8],
    deflated: &mut Vec<u8>,
    path: &Path,
) -> Result<(), PackError> {
    deflater.reset();
    deflated.clear();
    deflated.resize(input.len() / 2 + 1024, 0);
    let mut filled = 0;
    let mut guard = DeflateGuard::new(path, true);
    loop {
        if filled == deflated.len() {
            deflated.resize(filled * 2, 0);
        }
        let (status, consumed, produced) =
            compress(deflater, input, &mut deflated[filled..], TDEFLFlush::Finish);
        filled += produced;
        input = input.get(consumed..).unwrap_or_default();
        if guard.done(status, consumed, produced, input.is_empty())? {
            break;
        }
    }
    deflated.truncate(filled);
    Ok(())
}

/// Reads the compressor's answers for one deflate call sequence: whether to call again, and
/// an error naming the file when it refuses its input or stops making progress.
struct DeflateGuard<'a> {
    path: &'a Path,
    /// Whether the stream is being ended, so only [`TDEFLStatus::Done`] completes it.
    finishing: bool,
    /// Calls in a row that neither consumed nor produced a byte.
    stalls: u32,
}

impl<'a> DeflateGuard<'a> {
    fn new(path: &'a Path, finishing: bool) -> Self {
        Self {
            path,
            finishing,
            stalls: 0,
        }
    }

    /// Whether the work is done after a call that returned `status`, having consumed and
    /// produced the given byte counts; `input_left_empty` says whether all input was consumed.
    fn done(
        &mut self,
        status: TDEFLStatus,
        consumed: usize,
        produced: usize,
        input_left_empty: bool,
    ) -> Result<bool, PackError> {
        let error = |reason| PackError::Deflate {
            path: self.path.to_owned(),
            reason,
        };
        match status {
            TDEFLStatus::Done => return Ok(true),
            TDEFLStatus::Okay if !self.finishing && input_left_empty => return Ok(true),
            TDEFLStatus::Okay => {}
            TDEFLStatus::BadParam | TDEFLStatus::PutBufFailed => {
                return Err(error("the compressor refused its input"));
            }
        }
        // The compressor always progresses while it has room to write; guard against a bug
        // turning into an endless loop.
        self.stalls = if consumed == 0 && produced == 0 {
            self.stalls + 1
        } else {
            0
        };
        if self.stalls > 2 {
            return Err(error("the compressor stopped making progress"));
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_buffer_writes_full_buffers_only() -> io::Result<()> {
        let mut out = OutputBuffer::new(Vec::new());
        out.put(&[1; 10])?;
        out.put(&vec![2; BUFFER_LEN])?;
        assert_eq!(out.position, BUFFER_LEN as u64 + 10);
        assert_eq!(out.inner.len(), BUFFER_LEN);
        out.put(&[3; 5])?;
        let spare = out.spare()?;
        spare[0] = 4;
        out.commit(1);
        assert_eq!(out.position, BUFFER_LEN as u64 + 16);
        assert_eq!(out.inner.len(), BUFFER_LEN);
        let written = out.finish()?;
        assert_eq!(written.len(), BUFFER_LEN + 16);
        assert_eq!(written[..10], [1; 10]);
        assert_eq!(written[BUFFER_LEN + 10..], [3, 3, 3, 3, 3, 4]);
        Ok(())
    }

    #[test]
    fn deflate_whole_round_trips_through_flate2() -> Result<(), Box<dyn std::error::Error>> {
        let mut deflater = Box::<CompressorOxide>::default();
        deflater.set_format_and_level(DataFormat::Raw, 6);
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut deflated = Vec::new();
        for _ in 0..2 {
            deflate_whole(&mut deflater, &input, &mut deflated, Path::new("x"))?;
            let mut inflated = Vec::new();
            flate2::read::DeflateDecoder::new(&deflated[..]).read_to_end(&mut inflated)?;
            assert_eq!(inflated, input);
        }
        Ok(())
    }
}
