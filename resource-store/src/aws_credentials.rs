//! S3 credentials found where the AWS CLI and boto3 find them, for object_store.
//!
//! object_store alone reads only the `AWS_*` settings it is given and then falls through to the
//! EC2 instance-metadata endpoint, so keys written by `aws configure` or a named profile are never
//! found. The official chain (`aws-config`) is bridged in instead: environment variables, the
//! profile (`AWS_PROFILE` or `--profile`) in `~/.aws/credentials` and `~/.aws/config` with
//! `credential_process`, `role_arn` with `source_profile` and SSO, web identity, the ECS
//! container endpoint and, last, instance metadata, which `AWS_EC2_METADATA_DISABLED=true`
//! skips. Like the AWS SDKs, the chain reads the process environment and the files under `HOME`
//! itself; this crate only chooses the profile.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileRegionProvider;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use object_store::CredentialProvider;
use object_store::aws::AwsCredential;
use tokio::sync::{Mutex, OnceCell};

/// Credentials are fetched again this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// What the chain tries, for the error that says nothing was found.
const TRIED: &str = "the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY variables, the profile in \
     ~/.aws/credentials and ~/.aws/config (credential_process, role_arn with source_profile, \
     SSO), web identity (AWS_WEB_IDENTITY_TOKEN_FILE), the ECS container endpoint and EC2 \
     instance metadata (skipped when AWS_EC2_METADATA_DISABLED=true)";

/// The region `~/.aws/config` (or `AWS_CONFIG_FILE`) gives `profile`, or `AWS_PROFILE`'s profile
/// (else `default`) when it is `None`, as the AWS CLI reads it.
///
/// object_store needs the region when the client is built, before any request, so this reads the
/// file there and then. The profile's files are read with plain blocking I/O (as aws-config itself
/// does), so waiting on the future here needs no async runtime.
pub(crate) fn profile_region(profile: Option<&str>) -> Option<String> {
    let mut builder = ProfileFileRegionProvider::builder();
    if let Some(profile) = profile {
        builder = builder.profile_name(profile);
    }
    let provider = builder.build();
    futures::executor::block_on(provider.region()).map(|region| region.as_ref().to_owned())
}

/// No credentials anywhere the AWS CLI would look, or the chain failed to load them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsCredentialsError {
    /// Nothing in the chain had credentials.
    #[error(
        "no AWS credentials found for {profile}; tried {TRIED}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `aws configure`, or pick a profile with --profile or AWS_PROFILE"
    )]
    NotFound {
        /// The profile that was looked for.
        profile: String,
    },
    /// A provider in the chain had credentials configured but could not load them (a failing
    /// `credential_process`, an expired SSO session, a refused role).
    #[error("cannot load the AWS credentials of {profile}")]
    Failed {
        /// The profile that was looked for.
        profile: String,
        /// What the provider said.
        #[source]
        source: CredentialsError,
    },
}

/// The AWS CLI's credential chain as an object_store [`CredentialProvider`]: built on first use
/// (it needs the async runtime), cached until shortly before the credentials expire.
#[derive(Debug)]
pub(crate) struct AwsChainProvider {
    profile: Option<String>,
    chain: OnceCell<DefaultCredentialsChain>,
    /// The last credentials and when they expire; the lock also keeps concurrent requests from
    /// each running the chain (a `credential_process`, say) at once.
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl AwsChainProvider {
    /// A provider for `profile`, or for `AWS_PROFILE` (else `default`) when it is `None`.
    pub(crate) fn new(profile: Option<String>) -> Self {
        Self {
            profile,
            chain: OnceCell::new(),
            cached: Mutex::new(None),
        }
    }

    fn profile_shown(&self) -> String {
        match &self.profile {
            Some(profile) => format!("profile {profile:?}"),
            None => "the default profile (AWS_PROFILE, else \"default\")".to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl CredentialProvider for AwsChainProvider {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = cached.as_ref() {
            let fresh = expiry.is_none_or(|expiry| {
                expiry
                    .duration_since(SystemTime::now())
                    .is_ok_and(|left| left > REFRESH_MARGIN)
            });
            if fresh {
                return Ok(Arc::clone(credential));
            }
        }
        let chain = self
            .chain
            .get_or_init(|| async {
                let mut builder = DefaultCredentialsChain::builder();
                if let Some(profile) = &self.profile {
                    builder = builder.profile_name(profile);
                }
                builder.build().await
            })
            .await;
        let loaded = chain.provide_credentials().await.map_err(|error| {
            let error = match error {
                CredentialsError::CredentialsNotLoaded(_) => AwsCredentialsError::NotFound {
                    profile: self.profile_shown(),
                },
                source => AwsCredentialsError::Failed {
                    profile: self.profile_shown(),
                    source,
                },
            };
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(error),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: loaded.access_key_id().to_owned(),
            secret_key: loaded.secret_access_key().to_owned(),
            token: loaded.session_token().map(str::to_owned),
        });
        *cached = Some((Arc::clone(&credential), loaded.expiry()));
        Ok(credential)
    }
}
