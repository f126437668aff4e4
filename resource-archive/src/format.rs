//! Constants and small helpers of the zip format (APPNOTE 6.3), shared by the writer and the reader.
//!
//! Only what both sides need lives here: record signatures, flags, versions, extra-field tags,
//! the MS-DOS date/time conversion, and (for the reader's two passes) a bounds-checked
//! little-endian cursor and the extra-field splitter.

/// Local file header signature (`PK\x03\x04`).
pub const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
/// Data descriptor signature (`PK\x07\x08`), optional before a data descriptor.
pub const DATA_DESCRIPTOR_SIG: u32 = 0x0807_4b50;
/// Central directory file header signature (`PK\x01\x02`).
pub const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
/// End of central directory record signature (`PK\x05\x06`).
pub const END_OF_CENTRAL_DIR_SIG: u32 = 0x0605_4b50;
/// Zip64 end of central directory record signature (`PK\x06\x06`).
pub const ZIP64_END_OF_CENTRAL_DIR_SIG: u32 = 0x0606_4b50;
/// Zip64 end of central directory locator signature (`PK\x06\x07`).
pub const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;

/// Fixed size of a local file header, before the name and extra field.
pub const LOCAL_HEADER_LEN: usize = 30;
/// Fixed size of a central directory header, before the name, extra field and comment.
pub const CENTRAL_HEADER_LEN: usize = 46;
/// Fixed size of the end of central directory record, before the comment.
pub const END_OF_CENTRAL_DIR_LEN: usize = 22;
/// Fixed size of the zip64 end of central directory record.
pub const ZIP64_END_OF_CENTRAL_DIR_LEN: usize = 56;
/// Size of the zip64 end of central directory locator.
pub const ZIP64_LOCATOR_LEN: usize = 20;
/// The longest comment an end of central directory record can carry.
pub const MAX_COMMENT_LEN: usize = 0xffff;

/// General purpose flag: sizes and CRC follow the data in a data descriptor.
pub const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// General purpose flag: the name and comment are UTF-8.
pub const FLAG_UTF8: u16 = 1 << 11;
/// General purpose flag: the entry is encrypted (refused by the reader).
pub const FLAG_ENCRYPTED: u16 = 1;

/// Compression method: stored.
pub const METHOD_STORED: u16 = 0;
/// Compression method: deflate.
pub const METHOD_DEFLATE: u16 = 8;

/// "Version made by": Unix (3) in the high byte, spec 4.5 in the low byte.
pub const VERSION_MADE_BY_UNIX: u16 = (3 << 8) | 45;
/// "Version needed to extract" for plain entries (2.0).
pub const VERSION_NEEDED_DEFAULT: u16 = 20;
/// "Version needed to extract" for zip64 entries (4.5).
pub const VERSION_NEEDED_ZIP64: u16 = 45;

/// Extra field tag: zip64 extended information.
pub const EXTRA_ZIP64: u16 = 0x0001;
/// Extra field tag: extended timestamp (`UT`), seconds since the Unix epoch.
pub const EXTRA_EXTENDED_TIMESTAMP: u16 = 0x5455;

/// Unix file type bits of `st_mode`, as stored in the high 16 bits of the external attributes.
pub const S_IFMT: u32 = 0o170_000;
/// Unix file type: regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Unix file type: directory.
pub const S_IFDIR: u32 = 0o040_000;
/// Unix file type: symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// MS-DOS directory attribute, in the low byte of the external attributes.
pub const DOS_DIRECTORY: u32 = 0x10;

/// The earliest instant an MS-DOS timestamp can hold: 1980-01-01 00:00:00 UTC.
pub const DOS_EPOCH_UNIX_SECONDS: i64 = 315_532_800;
/// The last instant an MS-DOS timestamp can hold: 2107-12-31 23:59:58 UTC.
pub const DOS_MAX_UNIX_SECONDS: i64 = 4_354_819_198;

/// Converts Unix seconds (UTC) to MS-DOS `(time, date)`, clamping to the representable range
/// rather than failing (Python's `zipfile` raises on dates before 1980).
pub fn unix_to_dos(seconds: i64) -> (u16, u16) {
    let seconds = seconds.clamp(DOS_EPOCH_UNIX_SECONDS, DOS_MAX_UNIX_SECONDS);
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let hour = secs_of_day / 3600;
    let minute = (secs_of_day % 3600) / 60;
    let second = secs_of_day % 60;
    // Every component is within its bit field thanks to the clamp above.
    let time = ((hour << 11) | (minute << 5) | (second / 2)) as u16;
    let date = (((year - 1980) << 9) | (month << 5) | day) as u16;
    (time, date)
}

/// Converts MS-DOS `(time, date)` to Unix seconds, reading them as UTC (as Python's `zipfile`
/// does when it has no time zone). Out-of-range fields are clamped.
pub fn dos_to_unix(time: u16, date: u16) -> i64 {
    let year = 1980 + i64::from(date >> 9);
    let month = i64::from((date >> 5) & 0x0f).clamp(1, 12);
    let day = i64::from(date & 0x1f).clamp(1, 31);
    let hour = i64::from(time >> 11).min(23);
    let minute = i64::from((time >> 5) & 0x3f).min(59);
    let second = (i64::from(time & 0x1f) * 2).min(59);
    days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
}

/// A little-endian cursor over a byte slice that never reads out of bounds.
#[derive(Debug, Clone)]
pub(crate) struct Le<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Le<'a> {
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        Self { data, pos }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }

    pub(crate) fn u16(&mut self) -> Option<u64> {
        let b = self.bytes(2)?;
        Some(u64::from(u16::from_le_bytes([b[0], b[1]])))
    }

    pub(crate) fn u32(&mut self) -> Option<u64> {
        let b = self.bytes(4)?;
        Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let b = self.bytes(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
}

pub(crate) fn read_u32(data: &[u8], pos: usize) -> Option<u32> {
    Le::new(data, pos).u32().map(|v| v as u32)
}

/// Splits an extra field block into `(tag, data)` pairs. Up to three trailing bytes (padding some
/// writers add) are ignored; a field running past the block is an error.
pub(crate) fn extra_fields(extra: &[u8]) -> Result<Vec<(u16, &[u8])>, &'static str> {
    let mut out = Vec::new();
    let mut e = Le::new(extra, 0);
    while extra.len() - e.pos() >= 4 {
        let tag = e.u16().ok_or("corrupt extra field")? as u16;
        let len = e.u16().ok_or("corrupt extra field")? as usize;
        let data = e
            .bytes(len)
            .ok_or("an extra field runs past the extra block")?;
        out.push((tag, data));
    }
    Ok(out)
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_time_round_trips_on_even_seconds_and_clamps() {
        for seconds in [
            DOS_EPOCH_UNIX_SECONDS,
            1_700_000_000,
            1_700_000_001 - 1,
            DOS_MAX_UNIX_SECONDS,
        ] {
            let (time, date) = unix_to_dos(seconds);
            assert_eq!(dos_to_unix(time, date), seconds - seconds % 2);
        }
        let (time, date) = unix_to_dos(0);
        assert_eq!(dos_to_unix(time, date), DOS_EPOCH_UNIX_SECONDS);
        let (time, date) = unix_to_dos(i64::MAX);
        assert_eq!(dos_to_unix(time, date), DOS_MAX_UNIX_SECONDS);
    }
}
