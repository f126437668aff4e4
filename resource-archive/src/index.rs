//! The index of a zip archive, parsed from its tail: the end of central directory record (with its
//! zip64 form) and the central directory.
//!
//! A zip can only be read safely from its central directory, so a worker reads the tail of the
//! archive first ([`ArchiveIndex::from_tail`]), then streams the whole archive once through
//! [`unpack`](crate::unpack()), which checks every local header against this index.
//!
//! Parsing validates everything that can be known before the data arrives: every name is safe to
//! create under the destination, entry types are regular files, directories or symlinks, methods are
//! stored or deflate, nothing is encrypted, no two entries claim the same path, no entry lives under
//! a file or symlink entry, and entries do not overlap.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use crate::error::{TailReadError, UnpackError};
use crate::format::{
    CENTRAL_HEADER_LEN, CENTRAL_HEADER_SIG, END_OF_CENTRAL_DIR_LEN, END_OF_CENTRAL_DIR_SIG,
    EXTRA_EXTENDED_TIMESTAMP, EXTRA_ZIP64, FLAG_ENCRYPTED, FLAG_UTF8, LOCAL_HEADER_LEN, Le,
    MAX_COMMENT_LEN, METHOD_DEFLATE, METHOD_STORED, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
    ZIP64_END_OF_CENTRAL_DIR_LEN, ZIP64_END_OF_CENTRAL_DIR_SIG, ZIP64_LOCATOR_LEN,
    ZIP64_LOCATOR_SIG, dos_to_unix, extra_fields, read_u32,
};
use crate::names::entry_name_problem;

/// How many bytes of a small archive's end to fetch first, and the least for any archive: the
/// longest end of central directory record (with a 65,535-byte comment), the zip64 records, and a
/// central directory of a few thousand entries. Larger central directories cost one more read
/// ([`TailParse::NeedTail`]); [`first_tail_len`] asks for more of a large archive.
pub const RECOMMENDED_TAIL_LEN: u64 = 256 * 1024;

/// The share of a large archive's length that its first tail read asks for (1/128, 0.78%). The
/// central directories of the benchmarks' inputs take 0.36–0.93% of their archives (87–113 bytes
/// an entry), so at a flat 256 KiB a 100 MB archive needed a second read, one round trip after
/// the first, while the first range was already waiting for the index.
const FIRST_TAIL_SHARE: u64 = 128;

/// The most a first tail read asks for: the central directory of about 20,000 entries.
const MAX_FIRST_TAIL_LEN: u64 = 2 << 20;

/// How many bytes of the end of an archive of `archive_len` bytes to fetch first: the last
/// [`RECOMMENDED_TAIL_LEN`] bytes, or for a large archive its last 1/128, up to 2 MiB; never more
/// than the archive.
///
/// ```
/// use resource_archive::{first_tail_len, RECOMMENDED_TAIL_LEN};
///
/// assert_eq!(first_tail_len(1000), 1000);
/// assert_eq!(first_tail_len(10 << 20), RECOMMENDED_TAIL_LEN);
/// assert_eq!(first_tail_len(128 << 20), 1 << 20);
/// assert_eq!(first_tail_len(1 << 40), 2 << 20);
/// ```
pub fn first_tail_len(archive_len: u64) -> u64 {
    (archive_len / FIRST_TAIL_SHARE)
        .clamp(RECOMMENDED_TAIL_LEN, MAX_FIRST_TAIL_LEN)
        .min(archive_len)
}

/// The longest symlink target the reader accepts (Linux's `PATH_MAX` minus the NUL).
pub const MAX_SYMLINK_TARGET_LEN: u64 = 4095;

/// The most bytes the end of central directory search needs: the record and the longest comment.
const MAX_EOCD_SEARCH: u64 = (END_OF_CENTRAL_DIR_LEN + MAX_COMMENT_LEN) as u64;

/// General purpose flags that mean some form of encryption: traditional, strong, masked headers.
const FLAGS_ENCRYPTION: u16 = FLAG_ENCRYPTED | (1 << 6) | (1 << 13);

/// Unix host in the high byte of "version made by".
const HOST_UNIX: u16 = 3;
/// Mac OS X host (Darwin), which also stores a Unix mode.
const HOST_OSX: u16 = 19;

/// The result of parsing an archive's tail: the index, or how much more of the tail is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailParse {
    /// The central directory was complete in the tail.
    Index(ArchiveIndex),
    /// The central directory (or a zip64 record) starts before the given tail: call again with the
    /// last this-many bytes of the archive. Always more than the tail given, and at most the
    /// archive's length.
    NeedTail(u64),
}

/// What an entry of an [`ArchiveIndex`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IndexEntryKind {
    /// A regular file (the default when no Unix file type is stored).
    File,
    /// A directory: the name ends in `/`.
    Directory,
    /// A symbolic link whose target is the entry's data (a Unix mode with `S_IFLNK`).
    Symlink,
}

/// How an entry's data is compressed; only these two are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// Method 0: the data is the content.
    Stored,
    /// Method 8: raw deflate.
    Deflate,
}

/// One validated entry of the central directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexEntry {
    /// The name as stored (decoded as UTF-8 when flagged so, else as code page 437, like Python's
    /// `zipfile`); directories end in `/`.
    pub name: String,
    /// What the entry creates.
    pub kind: IndexEntryKind,
    /// How the data is compressed.
    pub compression: Method,
    /// The CRC-32 of the uncompressed content.
    pub crc32: u32,
    /// Bytes of data following the local header.
    pub compressed_size: u64,
    /// Bytes of content after decompression.
    pub uncompressed_size: u64,
    /// Offset of the local header from the start of the archive.
    pub local_header_offset: u64,
    /// Permission bits to restore (`mode & 0o777`: setuid, setgid and sticky are stripped), when the
    /// entry was made on Unix and stores a non-zero mode; `None` means the default (0o644 for files,
    /// 0o755 for directories, before the umask).
    pub mode: Option<u32>,
    /// Modification time in seconds since the Unix epoch: the extended timestamp (`UT`) when
    /// present, else the MS-DOS time read as UTC.
    pub mtime: i64,
    raw_name: Vec<u8>,
    flags: u16,
}

impl IndexEntry {
    /// The relative path the entry creates: the name without a directory's trailing `/`.
    pub fn path(&self) -> &str {
        self.name.strip_suffix('/').unwrap_or(&self.name)
    }

    /// The name's bytes exactly as stored in the central directory.
    pub fn raw_name(&self) -> &[u8] {
        &self.raw_name
    }

    /// The general purpose bit flags of the central directory header.
    pub fn flags(&self) -> u16 {
        self.flags
    }
}

/// The validated central directory of an archive, and the exact bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveIndex {
    entries: Vec<IndexEntry>,
    archive_len: u64,
    central_dir_offset: u64,
    trailer: Vec<u8>,
    total_uncompressed: u64,
}

impl ArchiveIndex {
    /// Parses the index from the last `tail.len()` bytes of an archive of `archive_len` bytes.
    ///
    /// Start with the last `min(archive_len, RECOMMENDED_TAIL_LEN)` bytes; when the central directory
    /// starts before them the answer is [`TailParse::NeedTail`] with the length to fetch instead. A
    /// caller that limits memory should refuse a `NeedTail` above its own bound.
    ///
    /// The archive must not be prefixed (self-extracting stubs) and must be a single disk: the central
    /// directory must end exactly where the (zip64) end record begins, and nothing may follow the
    /// end record's comment.
    pub fn from_tail(tail: &[u8], archive_len: u64) -> Result<TailParse, UnpackError> {
        let tail_len = tail.len() as u64;
        let tail_start = archive_len
            .checked_sub(tail_len)
            .ok_or_else(|| malformed(0, "the tail given is longer than the archive"))?;
        let need = |from: u64| TailParse::NeedTail(archive_len - from);

        // The end of central directory record: the last signature whose comment reaches the end.
        let Some(eocd_pos) = find_end_record(tail) else {
            return if tail_len < archive_len && tail_len < MAX_EOCD_SEARCH {
                Ok(TailParse::NeedTail(archive_len.min(MAX_EOCD_SEARCH)))
            } else {
                Err(UnpackError::NotAZip { archive_len })
            };
        };
        let eocd_abs = tail_start + eocd_pos as u64;
        let mut eocd = Le::new(tail, eocd_pos + 4);
        let field =
            |value: Option<u64>| value.ok_or_else(|| malformed(eocd_abs, "short end record"));
        let disk = field(eocd.u16())?;
        let cd_disk = field(eocd.u16())?;
        let disk_entries = field(eocd.u16())?;
        let total_entries = field(eocd.u16())?;
        let cd_size32 = field(eocd.u32())?;
        let cd_offset32 = field(eocd.u32())?;
        if disk != 0 || cd_disk != 0 || disk_entries != total_entries {
            return Err(malformed(eocd_abs, "multi-disk archives are not supported"));
        }

        // The zip64 locator sits right before the end record, if there is one.
        let mut entries_count = total_entries;
        let mut cd_size = cd_size32;
        let mut cd_offset = cd_offset32;
        let mut cd_end = eocd_abs;
        let maxed =
            total_entries == 0xffff || cd_size32 == 0xffff_ffff || cd_offset32 == 0xffff_ffff;
        let locator_abs = eocd_abs.checked_sub(ZIP64_LOCATOR_LEN as u64);
        let locator_in_tail = eocd_pos >= ZIP64_LOCATOR_LEN;
        if let Some(locator_abs) = locator_abs {
            if !locator_in_tail && tail_start > 0 {
                // A zip64 locator may precede the record: fetch it and the smallest zip64 record.
                let want = locator_abs.saturating_sub(ZIP64_END_OF_CENTRAL_DIR_LEN as u64);
                return Ok(need(want));
            } else if locator_in_tail
                && read_u32(tail, eocd_pos - ZIP64_LOCATOR_LEN) == Some(ZIP64_LOCATOR_SIG)
            {
                let z = zip64_end_record(tail, tail_start, locator_abs)?;
                match z {
                    Zip64::Need(from) => return Ok(need(from)),
                    Zip64::Record {
                        offset,
                        entries,
                        size,
                        cd_offset: z_cd_offset,
                    } => {
                        let agrees =
                            |narrow: u64, max: u64, wide: u64| narrow == max || narrow == wide;
                        if !agrees(total_entries, 0xffff, entries)
                            || !agrees(cd_size32, 0xffff_ffff, size)
                            || !agrees(cd_offset32, 0xffff_ffff, z_cd_offset)
                        {
                            return Err(malformed(
                                eocd_abs,
                                "the end record disagrees with the zip64 end record",
                            ));
                        }
                        entries_count = entries;
                        cd_size = size;
                        cd_offset = z_cd_offset;
                        cd_end = offset;
                    }
                }
            } else if maxed {
                return Err(no_locator(eocd_abs));
            }
        } else if maxed {
            return Err(no_locator(eocd_abs));
        }

        if cd_offset.checked_add(cd_size) != Some(cd_end) {
            return Err(malformed(
                cd_offset,
                "the central directory does not end where the end record begins \
                 (prefixed, padded or multi-part archive)",
            ));
        }
        if cd_offset < tail_start {
            return Ok(need(cd_offset));
        }
        let cd_start = usize::try_from(cd_offset - tail_start)
            .map_err(|_| malformed(cd_offset, "central directory offset out of range"))?;
        let cd_len = usize::try_from(cd_size)
            .map_err(|_| malformed(cd_offset, "central directory size out of range"))?;
        let cd = tail
            .get(cd_start..cd_start + cd_len)
            .ok_or_else(|| malformed(cd_offset, "central directory out of range"))?;

        let entries = parse_central_directory(cd, cd_offset, entries_count)?;
        let entries = validate(entries, cd_offset)?;
        let total_uncompressed = entries
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.uncompressed_size));
        Ok(TailParse::Index(ArchiveIndex {
            entries,
            archive_len,
            central_dir_offset: cd_offset,
            trailer: tail[cd_start..].to_vec(),
            total_uncompressed,
        }))
    }

    /// Reads the index of a local archive, seeking to its end (one read, or two for a large
    /// central directory). The position of `file` afterwards is unspecified.
    pub fn read_from(file: &mut (impl Read + Seek)) -> Result<Self, UnpackError> {
        let read_err = |offset: u64| move |source| UnpackError::Read { offset, source };
        let archive_len = file.seek(SeekFrom::End(0)).map_err(read_err(0))?;
        let read_tail = |want: u64| {
            let start = archive_len - want;
            let len = usize::try_from(want).map_err(|_| malformed(start, "tail too large"))?;
            let mut tail = vec![0; len];
            file.seek(SeekFrom::Start(start)).map_err(read_err(start))?;
            file.read_exact(&mut tail).map_err(read_err(start))?;
            Ok(tail)
        };
        Self::read_tail_with(archive_len, read_tail).map_err(|error| match error {
            TailReadError::Read(error) | TailReadError::Index(error) => error,
        })
    }

    /// Reads the index of an archive of `archive_len` bytes through `read_tail`, which returns the
    /// last `len` bytes of the archive when called with `len`: first the last
    /// [`first_tail_len`]`(archive_len)` bytes, then a longer tail if the central directory
    /// starts before it (see [`ArchiveIndex::from_tail`]). Every tail asked for is longer than the
    /// one before and at most `archive_len`.
    ///
    /// ```
    /// # use std::io::{Cursor, Write};
    /// use resource_archive::{ArchiveIndex, TailReadError};
    ///
    /// # let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    /// # zip.start_file("flow.py", zip::write::SimpleFileOptions::default())?;
    /// # zip.write_all(b"def main(): pass\n")?;
    /// # let archive: Vec<u8> = zip.finish()?.into_inner();
    /// // `archive` stands for a remote object, and this closure for a range request.
    /// let len = archive.len() as u64;
    /// let read_tail = |want: u64| -> Result<Vec<u8>, std::io::Error> {
    ///     Ok(archive[(len - want) as usize..].to_vec())
    /// };
    /// let index = ArchiveIndex::read_tail_with(len, read_tail)?;
    /// assert_eq!(index.entries()[0].name, "flow.py");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_tail_with<E>(
        archive_len: u64,
        mut read_tail: impl FnMut(u64) -> Result<Vec<u8>, E>,
    ) -> Result<Self, TailReadError<E>> {
        let mut want = first_tail_len(archive_len);
        loop {
            let tail = read_tail(want).map_err(TailReadError::Read)?;
            match Self::from_tail(&tail, archive_len)? {
                TailParse::Index(index) => return Ok(index),
                TailParse::NeedTail(more) if more > want && more <= archive_len => want = more,
                TailParse::NeedTail(_) => {
                    return Err(TailReadError::Index(UnpackError::Internal {
                        reason: "the tail parser asked for a tail it already had",
                    }));
                }
            }
        }
    }

    /// The entries, in the order of their local headers in the archive.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The sum of the declared uncompressed sizes (saturating).
    pub fn total_uncompressed(&self) -> u64 {
        self.total_uncompressed
    }

    /// The length of the archive the index was parsed for.
    pub fn archive_len(&self) -> u64 {
        self.archive_len
    }

    /// Where the central directory starts; everything from here to the end is the trailer.
    pub fn central_dir_offset(&self) -> u64 {
        self.central_dir_offset
    }

    /// The bytes from the central directory to the end of the archive, exactly as parsed. A streaming
    /// reader compares them with what the stream holds there.
    pub fn trailer(&self) -> &[u8] {
        &self.trailer
    }
}

fn no_locator(eocd_abs: u64) -> UnpackError {
    malformed(
        eocd_abs,
        "the end record needs zip64 values but there is no zip64 locator",
    )
}

fn malformed(offset: u64, reason: &str) -> UnpackError {
    UnpackError::Malformed {
        offset,
        reason: reason.to_owned(),
    }
}

/// The position in `tail` of the last end of central directory record whose comment length
/// reaches exactly to the end.
fn find_end_record(tail: &[u8]) -> Option<usize> {
    let last = tail.len().checked_sub(END_OF_CENTRAL_DIR_LEN)?;
    let first = last.saturating_sub(MAX_COMMENT_LEN);
    (first..=last).rev().find(|&pos| {
        read_u32(tail, pos) == Some(END_OF_CENTRAL_DIR_SIG)
            && Le::new(tail, pos + 20).u16() == Some((last - pos) as u64)
    })
}

enum Zip64 {
    Need(u64),
    Record {
        offset: u64,
        entries: u64,
        size: u64,
        cd_offset: u64,
    },
}

fn zip64_end_record(tail: &[u8], tail_start: u64, locator_abs: u64) -> Result<Zip64, UnpackError> {
    let bad = |reason| malformed(locator_abs, reason);
    let locator =
        usize::try_from(locator_abs - tail_start).map_err(|_| bad("locator out of range"))?;
    let mut l = Le::new(tail, locator + 4);
    let z_disk = l.u32().ok_or_else(|| bad("short zip64 locator"))?;
    let offset = l.u64().ok_or_else(|| bad("short zip64 locator"))?;
    let disks = l.u32().ok_or_else(|| bad("short zip64 locator"))?;
    if z_disk != 0 || disks > 1 {
        return Err(bad("multi-disk archives are not supported"));
    }
    if offset
        .checked_add(ZIP64_END_OF_CENTRAL_DIR_LEN as u64)
        .is_none_or(|end| end > locator_abs)
    {
        return Err(bad("the zip64 end record does not fit before its locator"));
    }
    if offset < tail_start {
        return Ok(Zip64::Need(offset));
    }
    let bad = |reason| malformed(offset, reason);
    let short = || bad("short zip64 end record");
    let mut z = Le::new(
        tail,
        usize::try_from(offset - tail_start).map_err(|_| short())?,
    );
    if z.u32() != Some(u64::from(ZIP64_END_OF_CENTRAL_DIR_SIG)) {
        return Err(bad("no zip64 end record where the locator points"));
    }
    let record_len = z.u64().ok_or_else(short)?;
    if record_len < (ZIP64_END_OF_CENTRAL_DIR_LEN - 12) as u64
        || offset
            .checked_add(12)
            .and_then(|o| o.checked_add(record_len))
            != Some(locator_abs)
    {
        return Err(bad("the zip64 end record does not end at its locator"));
    }
    let _made_by = z.u16().ok_or_else(short)?;
    let _needed = z.u16().ok_or_else(short)?;
    let disk = z.u32().ok_or_else(short)?;
    let cd_disk = z.u32().ok_or_else(short)?;
    let disk_entries = z.u64().ok_or_else(short)?;
    let entries = z.u64().ok_or_else(short)?;
    let size = z.u64().ok_or_else(short)?;
    let cd_offset = z.u64().ok_or_else(short)?;
    if disk != 0 || cd_disk != 0 || disk_entries != entries {
        return Err(bad("multi-disk archives are not supported"));
    }
    Ok(Zip64::Record {
        offset,
        entries,
        size,
        cd_offset,
    })
}

/// A central directory header before validation.
struct RawEntry {
    offset: u64,
    made_by: u16,
    flags: u16,
    method: u16,
    time: u16,
    date: u16,
    crc32: u32,
    compressed_size: u64,
    uncompressed_size: u64,
    external_attr: u32,
    local_header_offset: u64,
    raw_name: Vec<u8>,
    ut_mtime: Option<i64>,
}

fn parse_central_directory(
    cd: &[u8],
    cd_offset: u64,
    count: u64,
) -> Result<Vec<RawEntry>, UnpackError> {
    // Each header takes at least 46 bytes, which bounds what a lying count can make us allocate.
    let fits = (cd.len() / CENTRAL_HEADER_LEN) as u64;
    if count > fits {
        return Err(malformed(
            cd_offset,
            "the end record counts more entries than the central directory can hold",
        ));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut c = Le::new(cd, 0);
    for _ in 0..count {
        let offset = cd_offset + c.pos() as u64;
        let short = || malformed(offset, "central directory header runs past the directory");
        if c.u32() != Some(u64::from(CENTRAL_HEADER_SIG)) {
            return Err(malformed(offset, "no central directory header signature"));
        }
        let made_by = c.u16().ok_or_else(short)? as u16;
        let _needed = c.u16().ok_or_else(short)?;
        let flags = c.u16().ok_or_else(short)? as u16;
        let method = c.u16().ok_or_else(short)? as u16;
        let time = c.u16().ok_or_else(short)? as u16;
        let date = c.u16().ok_or_else(short)? as u16;
        let crc32 = c.u32().ok_or_else(short)? as u32;
        let mut compressed_size = c.u32().ok_or_else(short)?;
        let mut uncompressed_size = c.u32().ok_or_else(short)?;
        let name_len = c.u16().ok_or_else(short)? as usize;
        let extra_len = c.u16().ok_or_else(short)? as usize;
        let comment_len = c.u16().ok_or_else(short)? as usize;
        let mut disk_start = c.u16().ok_or_else(short)?;
        let _internal_attr = c.u16().ok_or_else(short)?;
        let external_attr = c.u32().ok_or_else(short)? as u32;
        let mut local_header_offset = c.u32().ok_or_else(short)?;
        let raw_name = c.bytes(name_len).ok_or_else(short)?.to_vec();
        let extra = c.bytes(extra_len).ok_or_else(short)?;
        c.bytes(comment_len).ok_or_else(short)?;

        let mut ut_mtime = None;
        let mut seen_zip64 = false;
        for (tag, data) in extra_fields(extra).map_err(|reason| malformed(offset, reason))? {
            if tag == EXTRA_ZIP64 && !seen_zip64 {
                seen_zip64 = true;
                let mut z = Le::new(data, 0);
                let bad = || malformed(offset, "zip64 extra field too short for its entry");
                if uncompressed_size == 0xffff_ffff {
                    uncompressed_size = z.u64().ok_or_else(bad)?;
                }
                if compressed_size == 0xffff_ffff {
                    compressed_size = z.u64().ok_or_else(bad)?;
                }
                if local_header_offset == 0xffff_ffff {
                    local_header_offset = z.u64().ok_or_else(bad)?;
                }
                if disk_start == 0xffff {
                    disk_start = z.u32().ok_or_else(bad)?;
                }
            } else if tag == EXTRA_EXTENDED_TIMESTAMP && ut_mtime.is_none() {
                let mut t = Le::new(data, 0);
                if let (Some(ut_flags), Some(mtime)) = (t.bytes(1), t.u32())
                    && ut_flags[0] & 1 != 0
                {
                    ut_mtime = Some(mtime as i64);
                }
            }
        }
        if disk_start != 0 {
            return Err(malformed(offset, "multi-disk archives are not supported"));
        }
        out.push(RawEntry {
            offset,
            made_by,
            flags,
            method,
            time,
            date,
            crc32,
            compressed_size,
            uncompressed_size,
            external_attr,
            local_header_offset,
            raw_name,
            ut_mtime,
        });
    }
    if c.pos() != cd.len() {
        return Err(malformed(
            cd_offset + c.pos() as u64,
            "the central directory holds more bytes than its entries",
        ));
    }
    Ok(out)
}

/// Code page 437, bytes 0x80 to 0xff, as Python's `cp437` codec decodes them.
const CP437_HIGH: [char; 128] = [
    '\u{00c7}', '\u{00fc}', '\u{00e9}', '\u{00e2}', '\u{00e4}', '\u{00e0}', '\u{00e5}', '\u{00e7}',
    '\u{00ea}', '\u{00eb}', '\u{00e8}', '\u{00ef}', '\u{00ee}', '\u{00ec}', '\u{00c4}', '\u{00c5}',
    '\u{00c9}', '\u{00e6}', '\u{00c6}', '\u{00f4}', '\u{00f6}', '\u{00f2}', '\u{00fb}', '\u{00f9}',
    '\u{00ff}', '\u{00d6}', '\u{00dc}', '\u{00a2}', '\u{00a3}', '\u{00a5}', '\u{20a7}', '\u{0192}',
    '\u{00e1}', '\u{00ed}', '\u{00f3}', '\u{00fa}', '\u{00f1}', '\u{00d1}', '\u{00aa}', '\u{00ba}',
    '\u{00bf}', '\u{2310}', '\u{00ac}', '\u{00bd}', '\u{00bc}', '\u{00a1}', '\u{00ab}', '\u{00bb}',
    '\u{2591}', '\u{2592}', '\u{2593}', '\u{2502}', '\u{2524}', '\u{2561}', '\u{2562}', '\u{2556}',
    '\u{2555}', '\u{2563}', '\u{2551}', '\u{2557}', '\u{255d}', '\u{255c}', '\u{255b}', '\u{2510}',
    '\u{2514}', '\u{2534}', '\u{252c}', '\u{251c}', '\u{2500}', '\u{253c}', '\u{255e}', '\u{255f}',
    '\u{255a}', '\u{2554}', '\u{2569}', '\u{2566}', '\u{2560}', '\u{2550}', '\u{256c}', '\u{2567}',
    '\u{2568}', '\u{2564}', '\u{2565}', '\u{2559}', '\u{2558}', '\u{2552}', '\u{2553}', '\u{256b}',
    '\u{256a}', '\u{2518}', '\u{250c}', '\u{2588}', '\u{2584}', '\u{258c}', '\u{2590}', '\u{2580}',
    '\u{03b1}', '\u{00df}', '\u{0393}', '\u{03c0}', '\u{03a3}', '\u{03c3}', '\u{00b5}', '\u{03c4}',
    '\u{03a6}', '\u{0398}', '\u{03a9}', '\u{03b4}', '\u{221e}', '\u{03c6}', '\u{03b5}', '\u{2229}',
    '\u{2261}', '\u{00b1}', '\u{2265}', '\u{2264}', '\u{2320}', '\u{2321}', '\u{00f7}', '\u{2248}',
    '\u{00b0}', '\u{2219}', '\u{00b7}', '\u{221a}', '\u{207f}', '\u{00b2}', '\u{25a0}', '\u{00a0}',
];

/// Decodes a name as Python's `zipfile` does: UTF-8 when flagged, else code page 437.
fn decode_name(raw: &[u8], flags: u16) -> Result<String, &'static str> {
    if flags & FLAG_UTF8 != 0 {
        return String::from_utf8(raw.to_vec()).map_err(|_| "the name is flagged UTF-8 but is not");
    }
    Ok(raw
        .iter()
        .map(|&b| {
            if b < 0x80 {
                char::from(b)
            } else {
                CP437_HIGH[usize::from(b - 0x80)]
            }
        })
        .collect())
}

fn validate(raw: Vec<RawEntry>, cd_offset: u64) -> Result<Vec<IndexEntry>, UnpackError> {
    let mut entries = Vec::with_capacity(raw.len());
    for r in raw {
        let name = decode_name(&r.raw_name, r.flags).map_err(|reason| UnpackError::UnsafeName {
            name: String::from_utf8_lossy(&r.raw_name).into_owned(),
            reason,
        })?;
        if let Some(reason) = entry_name_problem(&name) {
            return Err(UnpackError::UnsafeName { name, reason });
        }
        if r.flags & FLAGS_ENCRYPTION != 0 {
            return Err(UnpackError::Encrypted { name });
        }
        let compression = match r.method {
            METHOD_STORED => Method::Stored,
            METHOD_DEFLATE => Method::Deflate,
            method => return Err(UnpackError::UnsupportedMethod { name, method }),
        };
        if compression == Method::Stored && r.compressed_size != r.uncompressed_size {
            return Err(UnpackError::HeaderMismatch {
                name,
                field: "stored size (compressed vs uncompressed)",
                central: r.uncompressed_size.to_string(),
                local: r.compressed_size.to_string(),
            });
        }
        let host = r.made_by >> 8;
        let unix_mode = if host == HOST_UNIX || host == HOST_OSX {
            r.external_attr >> 16
        } else {
            0
        };
        let is_dir_name = name.ends_with('/');
        let kind = match unix_mode & S_IFMT {
            0 if is_dir_name => IndexEntryKind::Directory,
            0 => IndexEntryKind::File,
            S_IFDIR if is_dir_name => IndexEntryKind::Directory,
            S_IFREG if !is_dir_name => IndexEntryKind::File,
            S_IFLNK if !is_dir_name => IndexEntryKind::Symlink,
            S_IFDIR | S_IFREG | S_IFLNK => {
                return Err(UnpackError::Malformed {
                    offset: r.offset,
                    reason: format!(
                        "entry {name:?}: the Unix file type {:o} disagrees with the name \
                         (a trailing `/` means a directory)",
                        unix_mode & S_IFMT
                    ),
                });
            }
            other => {
                return Err(UnpackError::SpecialFile {
                    name,
                    file_type: special_type(other),
                    mode: unix_mode,
                });
            }
        };
        if kind == IndexEntryKind::Directory && r.uncompressed_size != 0 {
            return Err(UnpackError::SizeMismatch {
                name,
                declared: 0,
                actual: r.uncompressed_size,
            });
        }
        if kind == IndexEntryKind::Symlink && r.uncompressed_size > MAX_SYMLINK_TARGET_LEN {
            return Err(UnpackError::UnsafeSymlink {
                name,
                target: String::new(),
                reason: "target longer than PATH_MAX",
            });
        }
        let mode = (unix_mode & 0o7777 != 0).then_some(unix_mode & 0o777);
        let mtime = r.ut_mtime.unwrap_or_else(|| dos_to_unix(r.time, r.date));
        entries.push(IndexEntry {
            name,
            kind,
            compression,
            crc32: r.crc32,
            compressed_size: r.compressed_size,
            uncompressed_size: r.uncompressed_size,
            local_header_offset: r.local_header_offset,
            mode,
            mtime,
            raw_name: r.raw_name,
            flags: r.flags,
        });
    }

    check_paths(&entries)?;

    // Entries must follow each other without overlapping, before the central directory. The
    // bound uses the smallest local header (its name equals the central one, extra field empty).
    entries.sort_by_key(|e| e.local_header_offset);
    for (i, e) in entries.iter().enumerate() {
        let min_end = e
            .local_header_offset
            .checked_add(LOCAL_HEADER_LEN as u64 + e.raw_name.len() as u64)
            .and_then(|end| end.checked_add(e.compressed_size));
        let (limit, other) = match entries.get(i + 1) {
            Some(next) => (next.local_header_offset, next.name.clone()),
            None => (cd_offset, "the central directory".to_owned()),
        };
        if min_end.is_none_or(|end| end > limit) {
            return Err(UnpackError::Overlap {
                name: e.name.clone(),
                other,
            });
        }
    }
    Ok(entries)
}

fn special_type(file_type: u32) -> &'static str {
    match file_type {
        0o010_000 => "FIFO",
        0o020_000 => "character device",
        0o060_000 => "block device",
        0o140_000 => "socket",
        _ => "unknown file type",
    }
}

/// Duplicate paths (a file and a directory of the same path included), and entries below a file or
/// symlink entry.
fn check_paths(entries: &[IndexEntry]) -> Result<(), UnpackError> {
    let mut by_path: HashMap<&str, &IndexEntry> = HashMap::with_capacity(entries.len());
    for e in entries {
        if by_path.insert(e.path(), e).is_some() {
            return Err(UnpackError::DuplicateName {
                name: e.name.clone(),
            });
        }
    }
    for e in entries {
        let path = e.path();
        for (cut, _) in path.match_indices('/') {
            let ancestor = &path[..cut];
            match by_path.get(ancestor).map(|a| a.kind) {
                Some(IndexEntryKind::Symlink) => {
                    return Err(UnpackError::ThroughSymlink {
                        name: e.name.clone(),
                        link: ancestor.to_owned(),
                    });
                }
                Some(IndexEntryKind::File) => {
                    return Err(UnpackError::PathConflict {
                        name: e.name.clone(),
                        other: ancestor.to_owned(),
                    });
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp437_matches_python_for_high_bytes() {
        assert_eq!(decode_name(b"caf\x82", 0), Ok("café".to_owned()));
        assert_eq!(decode_name(b"\xff", 0), Ok("\u{a0}".to_owned()));
        assert_eq!(
            decode_name("café".as_bytes(), FLAG_UTF8),
            Ok("café".to_owned())
        );
        assert!(decode_name(b"caf\x82", FLAG_UTF8).is_err());
    }

    #[test]
    fn end_record_search_requires_the_comment_to_reach_the_end() {
        let mut tail = vec![0u8; 10];
        let mut eocd = vec![0x50, 0x4b, 0x05, 0x06];
        eocd.extend_from_slice(&[0; 16]);
        eocd.extend_from_slice(&3u16.to_le_bytes());
        tail.extend_from_slice(&eocd);
        tail.extend_from_slice(b"abc");
        assert_eq!(find_end_record(&tail), Some(10));
        tail.push(b'd');
        assert_eq!(find_end_record(&tail), None);
    }
}
