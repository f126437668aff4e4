//! How to reach a job store and what URLs to hand out: the caller's [`StoreConfig`], and the
//! cloud clients built from it for the leader's stores and the worker's direct URLs alike.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;

use crate::aws_credentials::{AwsChainProvider, profile_region};
use crate::error::{Result, StoreError};

/// How long a presigned URL stays valid unless told otherwise.
pub const DEFAULT_URL_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest validity S3 (SigV4), GCS (V4 signing) and Azure user-delegation SAS allow.
pub const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How to reach a store and what URLs to hand out, given by the caller (the CLI builds it from the
/// environment; the library never reads the environment itself).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Settings for the cloud clients, named as the standard variables (`AWS_ACCESS_KEY_ID`,
    /// `AWS_REGION`, `AWS_PROFILE`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`,
    /// `AZURE_USE_AZURE_CLI`, …). Unknown names are ignored. Without `AWS_ACCESS_KEY_ID`, S3
    /// credentials come from the AWS CLI's chain (see [`AwsCredentialsError`]), which reads the
    /// process environment and `~/.aws` itself, as the AWS SDKs do.
    ///
    /// [`AwsCredentialsError`]: crate::AwsCredentialsError
    pub settings: Vec<(String, String)>,
    /// The endpoint of an S3-compatible service, an Azure emulator or a GCS server.
    pub endpoint: Option<String>,
    /// How long presigned URLs stay valid.
    pub url_ttl: Duration,
    /// Hand workers direct `s3://`, `gs://` or `az://` URLs (they need credentials) instead of
    /// presigned ones.
    pub direct_urls: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            settings: Vec::new(),
            endpoint: None,
            url_ttl: DEFAULT_URL_TTL,
            direct_urls: false,
        }
    }
}

impl StoreConfig {
    /// A configuration from variables such as the process environment: keeps the `AWS_*`,
    /// `GOOGLE_*` and `AZURE_*` ones.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let settings = vars
            .into_iter()
            .filter(|(name, _)| {
                name.starts_with("AWS_")
                    || name.starts_with("GOOGLE_")
                    || name.starts_with("AZURE_")
            })
            .collect();
        Self {
            settings,
            ..Self::default()
        }
    }

    fn settings_for<K: std::str::FromStr>(&self, prefix: &str) -> Vec<(K, String)> {
        self.settings
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .filter_map(|(name, value)| {
                Some((name.to_ascii_lowercase().parse().ok()?, value.clone()))
            })
            .collect()
    }

    /// The value of one setting, if it is given and not empty.
    fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// Refuses a URL validity that no provider allows.
    pub(crate) fn check_ttl(&self) -> Result<()> {
        if self.url_ttl > MAX_URL_TTL || self.url_ttl.is_zero() {
            return Err(StoreError::UrlTtl {
                requested: self.url_ttl,
                max: MAX_URL_TTL,
            });
        }
        Ok(())
    }
}

/// Whether an endpoint is plain HTTP, which the cloud clients refuse unless told otherwise.
fn is_plain_http(endpoint: &str) -> bool {
    endpoint.starts_with("http://")
}

/// An S3 client configured from the `AWS_*` settings, the bucket, the locator's region and the
/// endpoint.
pub(crate) fn s3_builder(
    config: &StoreConfig,
    bucket: &str,
    region: Option<&str>,
) -> AmazonS3Builder {
    // Like the AWS CLI over HTTPS, send parts with an unsigned payload: signing the body costs a
    // SHA-256 pass over every byte, competing with our MD5 for the CPU, and the content hash
    // that every worker verifies already covers the bytes end to end. `AWS_UNSIGNED_PAYLOAD=false`
    // (applied below, after this default) signs them.
    let mut builder = AmazonS3Builder::new().with_unsigned_payload(true);
    // The profile's region, as the AWS CLI takes it, unless a variable or the locator names one:
    // a bucket outside object_store's default region answers every request with a redirect.
    let region_given = region.is_some()
        || config.setting("AWS_REGION").is_some()
        || config.setting("AWS_DEFAULT_REGION").is_some();
    if !region_given && let Some(profile_region) = profile_region(config.setting("AWS_PROFILE")) {
        builder = builder.with_region(profile_region);
    }
    for (key, value) in config.settings_for("AWS_") {
        builder = builder.with_config(key, value);
    }
    // Keys given outright are used as they are; otherwise the AWS CLI's chain finds them (and
    // object_store never falls through to instance metadata on its own).
    if config.setting("AWS_ACCESS_KEY_ID").is_none() {
        let profile = config.setting("AWS_PROFILE").map(str::to_owned);
        builder = builder.with_credentials(Arc::new(AwsChainProvider::new(profile)));
    }
    builder = builder.with_bucket_name(bucket);
    if let Some(region) = region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(is_plain_http(endpoint));
    }
    builder
}

/// A GCS client configured from the `GOOGLE_*` settings, the bucket and the endpoint.
pub(crate) fn gcs_builder(config: &StoreConfig, bucket: &str) -> GoogleCloudStorageBuilder {
    let mut builder = GoogleCloudStorageBuilder::new();
    for (key, value) in config.settings_for("GOOGLE_") {
        builder = builder.with_config(key, value);
    }
    builder = builder.with_bucket_name(bucket);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_base_url(endpoint);
    }
    builder
}

/// An Azure client configured from the `AZURE_*` settings, the container and the endpoint.
pub(crate) fn azure_builder(config: &StoreConfig, container: &str) -> MicrosoftAzureBuilder {
    let mut builder = MicrosoftAzureBuilder::new();
    for (key, value) in config.settings_for("AZURE_") {
        builder = builder.with_config(key, value);
    }
    builder = builder.with_container_name(container);
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_endpoint(endpoint.clone())
            .with_allow_http(is_plain_http(endpoint));
    }
    builder
}
