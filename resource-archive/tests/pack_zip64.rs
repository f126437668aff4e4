//! Zip64: archives with more than 65,535 entries, and members and offsets past 4 GiB.

mod pack_support;

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use pack_support::{TestResult, le16, le32, python_json};
use resource_archive::format::{
    DATA_DESCRIPTOR_SIG, END_OF_CENTRAL_DIR_SIG, EXTRA_ZIP64, FLAG_DATA_DESCRIPTOR,
    LOCAL_HEADER_SIG, ZIP64_END_OF_CENTRAL_DIR_SIG, ZIP64_LOCATOR_SIG,
};
use resource_archive::{Compression, PackOptions};
use resource_core::ResourceKind;

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from(le32(bytes, at)) | (u64::from(le32(bytes, at + 4)) << 32)
}

/// Checks the end records: the zip64 end record and locator before the classic end record, whose
/// fields hold the "see zip64" sentinels where the values overflow. Returns the entry count and
/// the central directory's offset as the zip64 end record gives them.
fn check_zip64_end(
    tail: &[u8],
    archive_len: u64,
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let eocd = tail.len() - 22;
    assert_eq!(le32(tail, eocd), END_OF_CENTRAL_DIR_SIG);
    let locator = eocd - 20;
    assert_eq!(le32(tail, locator), ZIP64_LOCATOR_SIG);
    assert_eq!(le32(tail, locator + 16), 1, "total number of disks");
    let record_offset = le64(tail, locator + 8);
    let record = usize::try_from(record_offset - (archive_len - tail.len() as u64))?;
    assert_eq!(le32(tail, record), ZIP64_END_OF_CENTRAL_DIR_SIG);
    assert_eq!(le64(tail, record + 4), 44, "size of the zip64 end record");
    let count = le64(tail, record + 32);
    let directory_len = le64(tail, record + 40);
    let directory_start = le64(tail, record + 48);
    assert_eq!(directory_start + directory_len, record_offset);
    let count16 = le16(tail, eocd + 10);
    assert_eq!(u64::from(count16), count.min(0xffff));
    assert_eq!(
        u64::from(le32(tail, eocd + 16)),
        directory_start.min(0xffff_ffff)
    );
    Ok((count, directory_start))
}

/// A temporary directory on tmpfs where there is one: creating many files is faster there, and
/// reading a hole of a sparse file returns the shared zero page instead of allocating memory.
fn tempdir_on_tmpfs() -> io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
}

#[test]
fn more_than_65535_entries_use_the_zip64_end_records() -> TestResult {
    let work = tempdir_on_tmpfs()?;
    let root = work.path().join("many");
    for dir in 0..70 {
        let dir_path = root.join(format!("d{dir:02}"));
        fs::create_dir_all(&dir_path)?;
        for file in 0..1000 {
            fs::File::create(dir_path.join(format!("f{file:03}")))?;
        }
    }
    let plan = resource_archive::plan(&root, ResourceKind::Directory, &PackOptions::default())?;
    assert_eq!((plan.file_count(), plan.dir_count()), (70_000, 70));
    let archive_path = work.path().join("many.zip");
    let summary = plan.write(io::BufWriter::new(fs::File::create(&archive_path)?))?;
    assert!(summary.zip64);
    assert_eq!(summary.entries, 70_070);

    let archive = fs::read(&archive_path)?;
    let (count, directory_start) = check_zip64_end(&archive, archive.len() as u64)?;
    assert_eq!(count, 70_070);
    assert!(directory_start < 0xffff_ffff);

    let zip = zip::ZipArchive::new(io::Cursor::new(&archive))?;
    assert_eq!(zip.len(), 70_070);

    let script = r#"
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    infos = zf.infolist()
    print(json.dumps({
        "count": len(infos),
        "bad": zf.testzip(),
        "first": infos[0].filename,
        "last": infos[-1].filename,
        "files": sum(1 for i in infos if not i.is_dir()),
        "sizes": sum(i.file_size for i in infos),
    }))
"#;
    let seen = python_json(script, &[&archive_path])?;
    assert_eq!(seen["count"], 70_070);
    assert!(seen["bad"].is_null(), "{}", seen["bad"]);
    assert_eq!(seen["first"], "d00/");
    assert_eq!(seen["last"], "d69/f999");
    assert_eq!(seen["files"], 70_000);
    assert_eq!(seen["sizes"], 0);
    Ok(())
}

/// Writes runs of zeros as holes, so a 4 GiB archive of a sparse file takes no disk space.
struct SparseWriter {
    file: fs::File,
    len: u64,
    zeros: Vec<u8>,
}

impl Write for SparseWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let all_zero = buf.len() <= self.zeros.len() && buf == &self.zeros[..buf.len()];
        if all_zero {
            self.file.seek(SeekFrom::Current(
                i64::try_from(buf.len()).map_err(io::Error::other)?,
            ))?;
        } else {
            self.file.write_all(buf)?;
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // A trailing hole must still count towards the length.
        self.file.set_len(self.len)?;
        self.file.flush()
    }
}

const FOUR_GIB_PLUS_ONE: u64 = (4 << 30) + 1;

/// A sparse member of 4 GiB + 1 bytes, followed by a small file whose header starts past 4 GiB,
/// stored and deflated. Python's `zipfile` reads the whole member back and checks its CRC.
#[test]
fn a_member_over_4_gib_uses_zip64_sizes_and_offsets() -> TestResult {
    let work = tempdir_on_tmpfs()?;
    let root = work.path().join("tree");
    fs::create_dir(&root)?;
    fs::File::create(root.join("big.bin"))?.set_len(FOUR_GIB_PLUS_ONE)?;
    fs::write(root.join("z.txt"), b"after the big one")?;

    let mut args = Vec::new();
    let mut crcs = Vec::new();
    let mut compressed_sizes = Vec::new();
    for (name, compression) in [
        ("stored.zip", Compression::Stored),
        ("deflate.zip", Compression::Deflate { level: 1 }),
    ] {
        let options = PackOptions {
            compression,
            ..PackOptions::default()
        };
        let plan = resource_archive::plan(&root, ResourceKind::Directory, &options)?;
        let archive_path = work.path().join(name);
        let summary = plan.write(SparseWriter {
            file: fs::File::create(&archive_path)?,
            len: 0,
            zeros: vec![0; 1 << 20],
        })?;
        assert_eq!(fs::metadata(&archive_path)?.len(), summary.archive_len);

        let mut file = fs::File::open(&archive_path)?;
        let mut head = vec![0; 64];
        file.read_exact(&mut head)?;
        assert_eq!(le32(&head, 0), LOCAL_HEADER_SIG);
        assert_eq!(le16(&head, 4), 45, "version needed for zip64");
        assert_ne!(le16(&head, 6) & FLAG_DATA_DESCRIPTOR, 0);
        assert_eq!(
            (le32(&head, 14), le32(&head, 18), le32(&head, 22)),
            (0, u32::MAX, u32::MAX)
        );
        let name_len = usize::from(le16(&head, 26));
        let extra = 30 + name_len;
        assert_eq!(le16(&head, extra), EXTRA_ZIP64);
        assert_eq!(le16(&head, extra + 2), 16);
        assert_eq!((le64(&head, extra + 4), le64(&head, extra + 12)), (0, 0));
        let data_start = (extra + usize::from(le16(&head, 28))) as u64;

        let mut zip = zip::ZipArchive::new(fs::File::open(&archive_path)?)?;
        let (big_compressed, big_crc) = {
            let mut big = zip.by_name("big.bin")?;
            assert_eq!(big.size(), FOUR_GIB_PLUS_ONE);
            assert_eq!(big.header_start(), 0);
            if compression != Compression::Stored {
                // Inflating to the end makes the `zip` crate check the CRC.
                assert_eq!(io::copy(&mut big, &mut io::sink())?, FOUR_GIB_PLUS_ONE);
            }
            (big.compressed_size(), big.crc32())
        };
        if compression == Compression::Stored {
            assert_eq!(big_compressed, FOUR_GIB_PLUS_ONE);
        }
        {
            let mut small = zip.by_name("z.txt")?;
            assert!(small.header_start() > 0xffff_ffff || compression != Compression::Stored);
            let mut content = String::new();
            small.read_to_string(&mut content)?;
            assert_eq!(content, "after the big one");
        }

        if compression == Compression::Stored {
            // The `zip` crate reads stored data slowly in a debug build: check it here, as
            // zeros whose CRC matches the one recorded.
            file.seek(SeekFrom::Start(data_start))?;
            let zeros = vec![0; 1 << 20];
            let mut chunk = vec![0; 1 << 20];
            let mut remaining = FOUR_GIB_PLUS_ONE;
            let mut crc = crc32fast::Hasher::new();
            while remaining > 0 {
                let len = chunk.len().min(usize::try_from(remaining)?);
                file.read_exact(&mut chunk[..len])?;
                assert!(chunk[..len] == zeros[..len], "stored data differs");
                crc.update(&chunk[..len]);
                remaining -= len as u64;
            }
            assert_eq!(crc.finalize(), big_crc);
        }

        // The data descriptor after the data has 8-byte sizes.
        file.seek(SeekFrom::Start(data_start + big_compressed))?;
        let mut descriptor = vec![0; 24];
        file.read_exact(&mut descriptor)?;
        assert_eq!(le32(&descriptor, 0), DATA_DESCRIPTOR_SIG);
        assert_eq!(le32(&descriptor, 4), big_crc);
        assert_eq!(le64(&descriptor, 8), big_compressed);
        assert_eq!(le64(&descriptor, 16), FOUR_GIB_PLUS_ONE);

        let tail_len = summary.archive_len.min(4096);
        file.seek(SeekFrom::Start(summary.archive_len - tail_len))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail)?;
        if compression == Compression::Stored {
            let (count, directory_start) = check_zip64_end(&tail, summary.archive_len)?;
            assert_eq!(count, 2);
            assert!(directory_start > 0xffff_ffff);
        } else {
            // Deflated zeros are small: the central directory needs no zip64 end records.
            assert!(!summary.zip64);
            assert_eq!(le32(&tail, tail.len() - 22), END_OF_CENTRAL_DIR_SIG);
            assert_ne!(le32(&tail, tail.len() - 42), ZIP64_LOCATOR_SIG);
        }
        args.push(archive_path);
        crcs.push(big_crc);
        compressed_sizes.push(big_compressed);
    }

    // Python reads the central directories (zip64 sizes and offsets) and the member after the
    // big one; its content and CRC were checked with the `zip` crate above.
    let script = r#"
import json, sys, zipfile
results = []
for path in sys.argv[1:]:
    with zipfile.ZipFile(path) as zf:
        big = zf.getinfo("big.bin")
        small = zf.getinfo("z.txt")
        results.append({
            "size": big.file_size,
            "compressed": big.compress_size,
            "crc": big.CRC,
            "small_offset": small.header_offset,
            "small": zf.read(small).decode(),
        })
print(json.dumps(results))
"#;
    let seen = python_json(script, &args)?;
    for (index, result) in seen.as_array().ok_or("no results")?.iter().enumerate() {
        assert_eq!(result["size"], FOUR_GIB_PLUS_ONE, "{index}");
        assert_eq!(result["crc"], crcs[index], "{index}");
        assert_eq!(result["compressed"], compressed_sizes[index], "{index}");
        assert_eq!(result["small"], "after the big one", "{index}");
    }
    assert!(seen[0]["small_offset"].as_u64().ok_or("offset")? > 0xffff_ffff);
    Ok(())
}
