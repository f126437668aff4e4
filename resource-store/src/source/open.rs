//! The source for a resource URL, by its scheme: the one place that knows every kind of
//! [`ByteSource`].

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::config::{StoreConfig, azure_builder, gcs_builder, s3_builder};
use crate::error::{Result, StoreError, object_store_error};
use crate::source::ByteSource;
use crate::source::file::LocalFileSource;
use crate::source::http::HttpSource;
use crate::source::object::ObjectStoreSource;

/// The source for a resource URL: `file:`, `http:` or `https:`, or a direct `s3://`, `gs://` or
/// `az://` URL read with the credentials in `config`.
pub fn open_url(url: &str, config: &StoreConfig) -> Result<Arc<dyn ByteSource>> {
    if url.starts_with("file:") {
        return Ok(Arc::new(LocalFileSource::from_url(url)?));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Arc::new(HttpSource::new(url)));
    }
    let unsupported = |reason: &str| StoreError::UnsupportedUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        unsupported("not a URL; expected file:, http(s)://, s3://, gs:// or az://")
    })?;
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
        .ok_or_else(|| {
            unsupported("a direct URL names a bucket and an object: SCHEME://BUCKET/KEY")
        })?;
    let build_error =
        || object_store_error(format!("{scheme}://{bucket}"), "connect to", String::new());
    let objects: Arc<dyn ObjectStore> = match scheme {
        "s3" => Arc::new(
            s3_builder(config, bucket, None)
                .build()
                .map_err(build_error())?,
        ),
        "gs" => Arc::new(gcs_builder(config, bucket).build().map_err(build_error())?),
        "az" => Arc::new(
            azure_builder(config, bucket)
                .build()
                .map_err(build_error())?,
        ),
        other => {
            return Err(unsupported(&format!(
                "the {other:?} scheme is not supported; use file:, http(s)://, s3://, gs:// or az://"
            )));
        }
    };
    Ok(Arc::new(ObjectStoreSource::new(
        objects,
        ObjectPath::from(key),
        url.to_owned(),
    )?))
}
