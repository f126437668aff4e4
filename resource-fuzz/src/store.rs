//! Store locators, `file:` URLs and the HTTP headers a worker reads a size from.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use resource_store::StoreLocator;
use resource_store::source::http::{ContentRange, first_answer_size, parse_content_range};
use resource_store::url::{file_url, file_url_path};

use crate::split_choice;

/// `--store` locators and `file:` URLs: parsing never panics, a locator names a bucket or a
/// normalised absolute directory, and every absolute path survives `file_url` then
/// `file_url_path` unchanged.
pub fn store_locator(data: &[u8]) {
    let (choice, bytes) = split_choice(data, 2);
    if choice == 0 {
        let text = String::from_utf8_lossy(bytes);
        match text.parse::<StoreLocator>() {
            Ok(StoreLocator::Directory(path)) => {
                assert!(path.is_absolute(), "{text:?} gives {path:?}");
                assert!(
                    path.components()
                        .all(|c| !matches!(c, Component::CurDir | Component::ParentDir)),
                    "{text:?} gives {path:?}"
                );
            }
            Ok(
                StoreLocator::S3 { bucket, .. }
                | StoreLocator::Gcs { bucket, .. }
                | StoreLocator::Azure {
                    container: bucket, ..
                },
            ) => assert!(!bucket.is_empty() && !bucket.contains('/'), "{text:?}"),
            Ok(_) => {}
            Err(error) => assert!(error.to_string().contains("accepted forms"), "{error}"),
        }
        if let Some(path) = file_url_path(&text) {
            assert!(path.is_absolute(), "{text:?} gives {path:?}");
        }
    } else {
        // Any bytes, as an absolute path.
        let mut raw = b"/".to_vec();
        raw.extend_from_slice(bytes.split(|&b| b == 0).next().unwrap_or_default());
        let path = Path::new(OsStr::from_bytes(&raw));
        let url = file_url(path);
        assert_eq!(
            file_url_path(&url).as_deref(),
            Some(path),
            "the round trip through {url:?}"
        );
    }
}

/// `Content-Range` and `Content-Length` as the first request's answer is read: a range that parses is
/// well formed and prints back as itself, and the size comes only from well-formed headers.
pub fn http_headers(data: &[u8]) {
    let (choice, bytes) = split_choice(data, 3);
    let text = String::from_utf8_lossy(bytes);
    let (range, length) = text.split_once('\n').unwrap_or((&text, ""));
    let parsed = parse_content_range(range);
    match parsed {
        Some(ContentRange::Satisfied { first, last, total }) => {
            assert!(first <= last && last < total, "{range:?}");
            let printed = format!("bytes {first}-{last}/{total}");
            assert_eq!(parse_content_range(&printed), parsed, "{printed:?}");
        }
        Some(ContentRange::Unsatisfied { total }) => {
            let printed = format!("bytes */{total}");
            assert_eq!(parse_content_range(&printed), parsed, "{printed:?}");
        }
        None => {}
    }
    let status = [206, 416, 200][usize::from(choice)];
    let answer = first_answer_size(status, Some(range), Some(length));
    let size = answer.map(|(total, _)| total);
    match (status, parsed) {
        (
            206,
            Some(ContentRange::Satisfied {
                first: 0,
                last,
                total,
            }),
        ) => assert_eq!(answer, Some((total, last + 1))),
        (416, Some(ContentRange::Unsatisfied { total: 0 })) => assert_eq!(answer, Some((0, 0))),
        (206 | 416, _) => assert_eq!(size, None, "{range:?}"),
        _ => {
            let digits = length.trim();
            let valid = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            assert_eq!(
                size.is_some(),
                valid && digits.parse::<u64>().is_ok(),
                "{length:?}"
            );
        }
    }
}
