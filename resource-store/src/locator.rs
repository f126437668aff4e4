//! Job store locators: what a user writes after `--store`, with one parser for every form.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::StoreError;
use crate::url::file_url_path;

/// The forms of locator accepted, for error messages.
pub const ACCEPTED_LOCATORS: &str = "a directory path, file:/abs/path, s3://bucket[/prefix], \
    gs://bucket[/prefix], az://container[/prefix], memory://, aws:REGION:NAME (Toil's AWS job \
    store, bucket NAME--toil) or google:PROJECT:NAME (Toil's Google job store, bucket NAME--toil)";

/// Where a job store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocator {
    /// A directory on a local or shared filesystem (Toil's file job store).
    Directory(PathBuf),
    /// An in-process store that lives as long as the [`crate::JobStore`] (for tests).
    Memory,
    /// An S3 bucket (or an S3-compatible service).
    S3 {
        /// The bucket.
        bucket: String,
        /// Where shared files go: `<prefix>/shared/` for `s3://`, the root for Toil's stores.
        shared_prefix: String,
        /// The region, when the locator names one (Toil's `aws:REGION:NAME`).
        region: Option<String>,
    },
    /// A Google Cloud Storage bucket.
    Gcs {
        /// The bucket.
        bucket: String,
        /// Where shared files go.
        shared_prefix: String,
    },
    /// An Azure Blob Storage container.
    Azure {
        /// The container.
        container: String,
        /// Where shared files go.
        shared_prefix: String,
    },
}

impl StoreLocator {
    /// A directory store at `path`, made absolute and normalised without resolving links, as
    /// Python's `os.path.abspath` does for Toil (`a/../b` is `b`).
    pub fn directory(path: &Path) -> Result<Self, StoreError> {
        let absolute = std::path::absolute(path).map_err(|source| StoreError::io(path, source))?;
        let mut normal = PathBuf::new();
        for component in absolute.components() {
            match component {
                std::path::Component::ParentDir => {
                    normal.pop();
                }
                std::path::Component::CurDir => {}
                other => normal.push(other),
            }
        }
        Ok(Self::Directory(normal))
    }

    /// The URL scheme of direct object URLs in this store (`s3`, `gs`, `az`), if it has one.
    pub fn scheme(&self) -> Option<&'static str> {
        match self {
            Self::S3 { .. } => Some("s3"),
            Self::Gcs { .. } => Some("gs"),
            Self::Azure { .. } => Some("az"),
            Self::Directory(_) | Self::Memory => None,
        }
    }
}

/// `bucket` and `prefix/shared` from `bucket/prefix`.
fn bucket_and_prefix(rest: &str) -> Option<(String, String)> {
    let rest = rest.trim_end_matches('/');
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    let prefix = prefix.trim_matches('/');
    let shared = if prefix.is_empty() {
        "shared".to_owned()
    } else {
        format!("{prefix}/shared")
    };
    Some((bucket.to_owned(), shared))
}

/// A region or job store name of Toil's `aws:` and `google:` locators: not empty, and no `/`
/// (the bucket `NAME--toil` would otherwise hold one; found by fuzzing).
fn is_toil_name(part: &str) -> bool {
    !part.is_empty() && !part.contains('/')
}

impl FromStr for StoreLocator {
    type Err = StoreError;

    fn from_str(locator: &str) -> Result<Self, Self::Err> {
        let refuse = |reason: &str| StoreError::BadLocator {
            locator: locator.to_owned(),
            reason: reason.to_owned(),
            accepted: ACCEPTED_LOCATORS,
        };
        if locator.is_empty() {
            return Err(refuse("it is empty"));
        }
        if locator == "memory://" || locator == "memory:" {
            return Ok(Self::Memory);
        }
        if locator.starts_with("file:") {
            let path = file_url_path(locator)
                .ok_or_else(|| refuse("a file: URL must name an absolute local path"))?;
            return Self::directory(&path);
        }
        let no_bucket = || refuse("it names no bucket or container");
        if let Some(rest) = locator.strip_prefix("s3://") {
            let (bucket, shared_prefix) = bucket_and_prefix(rest).ok_or_else(no_bucket)?;
            return Ok(Self::S3 {
                bucket,
                shared_prefix,
                region: None,
            });
        }
        if let Some(rest) = locator.strip_prefix("gs://") {
            let (bucket, shared_prefix) = bucket_and_prefix(rest).ok_or_else(no_bucket)?;
            return Ok(Self::Gcs {
                bucket,
                shared_prefix,
            });
        }
        if let Some(rest) = locator.strip_prefix("az://") {
            let (container, shared_prefix) = bucket_and_prefix(rest).ok_or_else(no_bucket)?;
            return Ok(Self::Azure {
                container,
                shared_prefix,
            });
        }
        // Toil's cloud locators keep shared files at the root of bucket `NAME--toil`.
        if let Some(rest) = locator.strip_prefix("aws:") {
            let (region, name) = rest
                .split_once(':')
                .filter(|(region, name)| is_toil_name(region) && is_toil_name(name))
                .ok_or_else(|| refuse("Toil's AWS locator is aws:REGION:NAME"))?;
            return Ok(Self::S3 {
                bucket: format!("{name}--toil"),
                shared_prefix: String::new(),
                region: Some(region.to_owned()),
            });
        }
        if let Some(rest) = locator.strip_prefix("google:") {
            let name = rest.split_once(':').map_or(rest, |(_project, name)| name);
            if !is_toil_name(name) {
                return Err(refuse("Toil's Google locator is google:PROJECT:NAME"));
            }
            return Ok(Self::Gcs {
                bucket: format!("{name}--toil"),
                shared_prefix: String::new(),
            });
        }
        if let Some((scheme, _)) = locator.split_once("://") {
            return Err(refuse(&format!("the scheme {scheme:?} is not supported")));
        }
        Self::directory(Path::new(locator))
    }
}

impl fmt::Display for StoreLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(path) => write!(f, "{}", path.display()),
            Self::Memory => f.write_str("memory://"),
            Self::S3 { bucket, .. } => write!(f, "s3://{bucket}"),
            Self::Gcs { bucket, .. } => write!(f, "gs://{bucket}"),
            Self::Azure { container, .. } => write!(f, "az://{container}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_locator_form_parses_and_bad_ones_list_the_accepted_forms() {
        let check = |text: &str, expected: Option<StoreLocator>| {
            let parsed = text.parse::<StoreLocator>();
            match expected {
                Some(expected) => assert_eq!(parsed.ok(), Some(expected), "{text}"),
                None => {
                    let message = parsed
                        .err()
                        .map(|error| error.to_string())
                        .unwrap_or_default();
                    assert!(message.contains("accepted forms"), "{text}: {message}");
                }
            }
        };
        let s3 = |bucket: &str, prefix: &str, region: Option<&str>| StoreLocator::S3 {
            bucket: bucket.into(),
            shared_prefix: prefix.into(),
            region: region.map(Into::into),
        };
        check(
            "/abs/store",
            Some(StoreLocator::Directory("/abs/store".into())),
        );
        check(
            "file:/abs/store",
            Some(StoreLocator::Directory("/abs/store".into())),
        );
        check("memory://", Some(StoreLocator::Memory));
        check("s3://bucket", Some(s3("bucket", "shared", None)));
        check("s3://bucket/a/b/", Some(s3("bucket", "a/b/shared", None)));
        check(
            "aws:us-west-2:flow",
            Some(s3("flow--toil", "", Some("us-west-2"))),
        );
        check(
            "gs://b/p",
            Some(StoreLocator::Gcs {
                bucket: "b".into(),
                shared_prefix: "p/shared".into(),
            }),
        );
        check(
            "google:proj:flow",
            Some(StoreLocator::Gcs {
                bucket: "flow--toil".into(),
                shared_prefix: String::new(),
            }),
        );
        check(
            "az://c",
            Some(StoreLocator::Azure {
                container: "c".into(),
                shared_prefix: "shared".into(),
            }),
        );
        for bad in [
            "",
            "s3://",
            "gs:///x",
            "aws:flow",
            "aws::x",
            "google:p:",
            "aws:us-west-2://x",
            "google:p:a/b",
            "ftp://x/y",
            "file:rel",
        ] {
            check(bad, None);
        }
    }
}
