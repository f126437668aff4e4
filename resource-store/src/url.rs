//! `file:` URLs as Toil writes and reads them.
//!
//! Toil's file job store hands out `'file:' + path` (one slash, the path unescaped) and its workers
//! read a URL with Python's `urlparse` and `unquote`. We write the path as Toil does, except that
//! `%`, `#`, `?` and ASCII control characters are percent-encoded: Toil's `urlparse` would cut the
//! path at `#` or `?`, and its `unquote` would change `%41`. For every other path our URL is
//! byte-identical to Toil's, and both `unquote`s get the path back. We read Toil's form too.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The `file:` URL of an absolute path: `file:/abs/path`, with `%`, `#`, `?` and ASCII control
/// characters percent-encoded (they would change the URL's meaning); spaces and non-ASCII text
/// stay as they are, as in Toil's URLs. A path that starts with `//` is written `file:////…`.
pub fn file_url(path: &Path) -> String {
    let mut url = String::from("file:");
    let bytes = path.as_os_str().as_bytes();
    // `file://host/x` would name a host: a path that starts with `//` gets an empty authority
    // first (`file:////x`), which Toil's `urlparse` reads as the path `//x` too.
    if bytes.starts_with(b"//") {
        url.push_str("//");
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            for ch in text.chars() {
                if matches!(ch, '%' | '#' | '?') || ch.is_ascii_control() {
                    url.push_str(&format!("%{:02X}", u32::from(ch)));
                } else {
                    url.push(ch);
                }
            }
        }
        // A path that is not UTF-8 cannot be text: its non-ASCII bytes are encoded too.
        Err(_) => {
            for &byte in bytes {
                if matches!(byte, b'%' | b'#' | b'?') || byte.is_ascii_control() || !byte.is_ascii()
                {
                    url.push_str(&format!("%{byte:02X}"));
                } else {
                    url.push(char::from(byte));
                }
            }
        }
    }
    url
}

/// The local path of a `file:` URL, or `None` if the URL is not a local `file:` URL.
///
/// Accepts `file:/p`, `file:///p` and `file://localhost/p`, like Toil's `_extract_path_from_url`,
/// and percent-decodes the path like Python's `unquote` (invalid escapes stay as they are).
pub fn file_url_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("file:")
        .or_else(|| url.strip_prefix("FILE:"))?;
    let path = if let Some(after) = rest.strip_prefix("//") {
        let (host, path) = after.split_at(after.find('/')?);
        if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
            return None;
        }
        path
    } else {
        rest
    };
    // `urlparse` ends the path at a query or fragment.
    let path = path.split(['?', '#']).next().unwrap_or(path);
    if !path.starts_with('/') {
        return None;
    }
    Some(PathBuf::from(OsString::from_vec(percent_decode(
        path.as_bytes(),
    ))))
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut index = 0;
    while index < input.len() {
        if input[index] == b'%'
            && let Some(byte) = input
                .get(index + 1..index + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(input[index]);
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_round_trip_and_read_toil_forms() {
        let check = |url: &str, path: Option<&str>| {
            assert_eq!(file_url_path(url).as_deref(), path.map(Path::new), "{url}");
        };
        check("file:/a/b", Some("/a/b"));
        check("file:///a/b", Some("/a/b"));
        check("file://localhost/a/b", Some("/a/b"));
        check("file://other/a/b", None);
        check("file:/a%20b/%25x", Some("/a b/%x"));
        check("file:/a%zz", Some("/a%zz"));
        check("http://x/a", None);
        check("file:relative", None);
        assert_eq!(file_url(Path::new("/a b/caf\u{e9}")), "file:/a b/caf\u{e9}");
        assert_eq!(
            file_url(Path::new("/a%b#c?d\ne")),
            "file:/a%25b%23c%3Fd%0Ae"
        );
        for raw in ["/s/shared/x", "/a b/c%d#e?f", "/caf\u{e9}/x", "/tab\there"] {
            let url = file_url(Path::new(raw));
            assert_eq!(
                file_url_path(&url).as_deref(),
                Some(Path::new(raw)),
                "{url}"
            );
        }
        assert_eq!(file_url(Path::new("/s/shared/x")), "file:/s/shared/x");
    }
}
