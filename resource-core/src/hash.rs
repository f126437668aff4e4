//! MD5 hashes as Toil uses them: the path hash of a leader path and the content hash of stored bytes.
//!
//! Both are 32 lowercase hexadecimal digits. The newtypes below can only hold such a string, so a value
//! that made it into a [`PathHash`] or [`ContentHash`] is safe to use as a file name or variable suffix.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;

use md5::{Digest, Md5};

/// Why the incremental MD5 failed. Only aws-lc can fail, and for MD5 it does not in practice (its
/// functions return 1 always); the error exists so that a broken library surfaces as an error,
/// never a wrong hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// aws-lc reported an error while hashing.
    #[error("MD5 through aws-lc failed in {0}")]
    AwsLc(&'static str),
}

impl From<HashError> for io::Error {
    fn from(error: HashError) -> Self {
        io::Error::other(error)
    }
}

/// Why a string is not a valid MD5 hex digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashParseError {
    /// The string does not have exactly 32 characters.
    #[error("hash {value:?} has {len} characters; an MD5 hash has 32 lowercase hex digits")]
    WrongLength {
        /// The rejected string.
        value: String,
        /// Its length in characters.
        len: usize,
    },
    /// The string holds a character other than `0-9a-f`.
    #[error("hash {value:?} holds {found:?}; an MD5 hash has only lowercase hex digits 0-9a-f")]
    NotLowercaseHex {
        /// The rejected string.
        value: String,
        /// The first offending character.
        found: char,
    },
}

fn validate_md5_hex(value: &str) -> Result<(), HashParseError> {
    if let Some(found) = value.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(HashParseError::NotLowercaseHex {
            value: value.to_owned(),
            found,
        });
    }
    if value.len() != 32 {
        return Err(HashParseError::WrongLength {
            value: value.to_owned(),
            len: value.chars().count(),
        });
    }
    Ok(())
}

fn to_hex(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

macro_rules! md5_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The 32 lowercase hex digits.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Builds the hash from a raw 16-byte MD5 digest.
            pub fn from_digest(digest: [u8; 16]) -> Self {
                Self(to_hex(&digest))
            }
        }

        impl FromStr for $name {
            type Err = HashParseError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                validate_md5_hex(value)?;
                Ok(Self(value.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = HashParseError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                validate_md5_hex(&value)?;
                Ok(Self(value))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::try_from(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

md5_newtype!(
    /// The MD5 of a leader path exactly as the user gave it (its bytes, not normalised).
    ///
    /// It names the environment variable `JTRES_<pathHash>` and the object in the job store.
    PathHash
);

md5_newtype!(
    /// The MD5 of the stored bytes of a resource: the raw file, or the whole zip archive.
    ///
    /// It names the directory `<JTRES_ROOT>/<contentHash>` on a worker.
    ContentHash
);

impl PathHash {
    /// The path hash of a leader path: MD5 of its bytes as given, like Toil's
    /// `hashlib.md5(path.encode()).hexdigest()`.
    pub fn of_path(path: &Path) -> Self {
        Self::of_bytes(path.as_os_str().as_encoded_bytes())
    }

    /// The path hash of raw path bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::from_digest(Md5::digest(bytes).into())
    }
}

impl ContentHash {
    /// The content hash of bytes held in memory. Prefer [`HashingReader`] or [`HashingWriter`] for
    /// content of any size.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::from_digest(Md5::digest(bytes).into())
    }
}

/// An incremental MD5 that yields a [`ContentHash`].
///
/// With the `aws-lc` feature (on by default) it uses aws-lc's assembly MD5, about a quarter faster
/// than the pure-Rust one (MD5 is what bounds creating and downloading a resource); aws-lc is the
/// library rustls links for TLS anyway. Without the feature the pure-Rust `md-5` serves.
#[derive(Clone)]
pub struct ContentHasher {
    engine: Engine,
    bytes: u64,
}

#[derive(Clone)]
enum Engine {
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc::Md5),
    Rust(Md5),
}

impl Default for ContentHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentHasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        #[cfg(feature = "aws-lc")]
        if let Some(md5) = aws_lc::Md5::new() {
            return Self {
                engine: Engine::AwsLc(md5),
                bytes: 0,
            };
        }
        Self::pure_rust()
    }

    /// A hasher that uses the pure-Rust `md-5` whatever the features; for comparing engines.
    pub fn pure_rust() -> Self {
        Self {
            engine: Engine::Rust(Md5::new()),
            bytes: 0,
        }
    }

    /// Which MD5 implementation this hasher uses: `"aws-lc"` or `"md-5"`.
    pub fn engine_name(&self) -> &'static str {
        match &self.engine {
            #[cfg(feature = "aws-lc")]
            Engine::AwsLc(_) => "aws-lc",
            Engine::Rust(_) => "md-5",
        }
    }

    /// Feeds bytes to the hash.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), HashError> {
        match &mut self.engine {
            #[cfg(feature = "aws-lc")]
            Engine::AwsLc(md5) => md5.update(bytes)?,
            Engine::Rust(md5) => md5.update(bytes),
        }
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// How many bytes have been hashed.
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes
    }

    /// The hash of everything fed so far.
    pub fn finish(self) -> Result<ContentHash, HashError> {
        let digest: [u8; 16] = match self.engine {
            #[cfg(feature = "aws-lc")]
            Engine::AwsLc(md5) => md5.finish()?,
            Engine::Rust(md5) => md5.finalize().into(),
        };
        Ok(ContentHash::from_digest(digest))
    }
}

/// aws-lc's MD5, through the C functions of `aws-lc-sys` (its Rust API, `aws-lc-rs`, offers no
/// MD5). The only unsafe code of the crate, kept to these three calls.
#[cfg(feature = "aws-lc")]
#[allow(unsafe_code)]
mod aws_lc {
    use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Init, MD5_Update};

    use super::HashError;

    /// An MD5 state: plain data (four words, a count and a 64-byte block), so copying it forks
    /// the hash.
    #[derive(Clone)]
    pub(super) struct Md5(MD5_CTX);

    impl Md5 {
        /// A fresh state; `None` if aws-lc refuses one.
        pub(super) fn new() -> Option<Self> {
            let mut ctx = MD5_CTX {
                h: [0; 4],
                Nl: 0,
                Nh: 0,
                data: [0; 64],
                num: 0,
            };
            // SAFETY: `ctx` is a valid, exclusively borrowed MD5_CTX that MD5_Init overwrites.
            let ok = unsafe { MD5_Init(&mut ctx) };
            (ok == 1).then_some(Self(ctx))
        }

        pub(super) fn update(&mut self, bytes: &[u8]) -> Result<(), HashError> {
            // SAFETY: the state was initialised by MD5_Init; `bytes` is valid for reads of its
            // length for the duration of the call, and MD5_Update keeps no pointer to it.
            let ok = unsafe { MD5_Update(&mut self.0, bytes.as_ptr().cast(), bytes.len()) };
            if ok == 1 {
                Ok(())
            } else {
                Err(HashError::AwsLc("MD5_Update"))
            }
        }

        pub(super) fn finish(mut self) -> Result<[u8; 16], HashError> {
            let mut digest = [0u8; 16];
            // SAFETY: `digest` has room for the 16 bytes MD5_Final writes; the state was
            // initialised by MD5_Init and is not used again.
            let ok = unsafe { MD5_Final(digest.as_mut_ptr(), &mut self.0) };
            if ok == 1 {
                Ok(digest)
            } else {
                Err(HashError::AwsLc("MD5_Final"))
            }
        }
    }
}

impl fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentHasher")
            .field("engine", &self.engine_name())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// A reader that hashes every byte read through it, in constant memory.
///
/// ```
/// use std::io::Read;
/// use resource_core::hash::HashingReader;
///
/// let mut reader = HashingReader::new(&b"hello"[..]);
/// std::io::copy(&mut reader, &mut std::io::sink())?;
/// let (_, hash) = reader.finish()?;
/// assert_eq!(hash.as_str(), "5d41402abc4b2a76b9719d911017c592");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: ContentHasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: ContentHasher::new(),
        }
    }

    /// How many bytes have passed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.hasher.bytes_hashed()
    }

    /// The inner reader and the hash of all bytes read.
    pub fn finish(self) -> Result<(R, ContentHash), HashError> {
        Ok((self.inner, self.hasher.finish()?))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read])?;
        Ok(read)
    }
}

/// A writer that hashes every byte written through it, in constant memory.
///
/// ```
/// use std::io::Write;
/// use resource_core::hash::HashingWriter;
///
/// let mut writer = HashingWriter::new(Vec::new());
/// writer.write_all(b"hello")?;
/// let (bytes, hash) = writer.finish()?;
/// assert_eq!(bytes, b"hello");
/// assert_eq!(hash.as_str(), "5d41402abc4b2a76b9719d911017c592");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: ContentHasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: ContentHasher::new(),
        }
    }

    /// How many bytes have passed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.hasher.bytes_hashed()
    }

    /// A reference to the inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer and the hash of all bytes written.
    pub fn finish(self) -> Result<(W, ContentHash), HashError> {
        Ok((self.inner, self.hasher.finish()?))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written])?;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_lowercase_hex_of_length_32() {
        let check = |input: &str, ok: bool| {
            assert_eq!(input.parse::<ContentHash>().is_ok(), ok, "{input:?}");
        };
        check("d41d8cd98f00b204e9800998ecf8427e", true);
        check("D41D8CD98F00B204E9800998ECF8427E", false);
        check("d41d8cd98f00b204e9800998ecf8427", false);
        check("d41d8cd98f00b204e9800998ecf8427e0", false);
        check("g41d8cd98f00b204e9800998ecf8427e", false);
        check("", false);
        check("../../../../../../../../etc/passw", false);
    }

    /// Feeds `data` in pieces of `piece` bytes and returns the hash.
    fn hash_in_pieces(mut hasher: ContentHasher, data: &[u8], piece: usize) -> ContentHash {
        for chunk in data.chunks(piece.max(1)) {
            assert!(hasher.update(chunk).is_ok());
        }
        assert_eq!(hasher.bytes_hashed(), data.len() as u64);
        match hasher.finish() {
            Ok(hash) => hash,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn both_engines_give_rfc_1321_digests_however_the_bytes_are_split() {
        let check = |input: &[u8], expected: &str| {
            for piece in [1, 3, 63, 64, 65, 4096] {
                for hasher in [ContentHasher::new(), ContentHasher::pure_rust()] {
                    let engine = hasher.engine_name();
                    let got = hash_in_pieces(hasher, input, piece);
                    assert_eq!(got.as_str(), expected, "{engine}, pieces of {piece}");
                }
            }
        };
        check(b"", "d41d8cd98f00b204e9800998ecf8427e");
        check(b"a", "0cc175b9c0f1b6a831c399e269772661");
        check(b"abc", "900150983cd24fb0d6963f7d28e17f72");
        check(b"message digest", "f96b697d7cb7938d525a2f31aaf161d0");
        check(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "d174ab98d277d9f5a5611c2c9f419d9f",
        );
        check(
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        );
    }

    #[test]
    fn both_engines_agree_on_large_uneven_input() {
        // Pseudo-random bytes whose length crosses many 64-byte block boundaries unevenly.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let data: Vec<u8> = (0..(3 << 20) + 13)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let reference = ContentHash::of_bytes(&data);
        for piece in [1000, 65_537, 1 << 20] {
            assert_eq!(
                hash_in_pieces(ContentHasher::new(), &data, piece),
                reference
            );
            assert_eq!(
                hash_in_pieces(ContentHasher::pure_rust(), &data, piece),
                reference
            );
        }
    }

    #[cfg(feature = "aws-lc")]
    #[test]
    fn the_default_engine_is_aws_lc_when_built_with_it() {
        // The speed targets assume aws-lc's MD5; a build that silently fell back would miss them.
        assert_eq!(ContentHasher::new().engine_name(), "aws-lc");
    }

    #[test]
    fn path_hash_is_md5_of_the_bytes_as_given() {
        assert_eq!(
            PathHash::of_path(Path::new("")).as_str(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_ne!(
            PathHash::of_path(Path::new("/a/b")),
            PathHash::of_path(Path::new("/a//b"))
        );
    }
}
