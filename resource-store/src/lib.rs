//! Job stores and the two journeys across them: the leader's publish and the worker's
//! fetch-verify-install.
//!
//! A leader [`publish()`]es a path into a [`JobStore`] (local disk, memory; S3, GCS and Azure share
//! the same code through [`object_store`]): the bytes stream in constant memory, are hashed on the
//! way and appear under the path hash only when complete. A worker [`install()`]s the resource under
//! `<root>/<contentHash>`, verifying the MD5 before anything becomes visible.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use resource_store::{install, open_url, publish, JobStore, PublishOptions, StoreLocator};
//!
//! let scratch = tempfile::tempdir()?;
//! let script = scratch.path().join("flow.py");
//! std::fs::write(&script, "print('hello from the leader')\n")?;
//!
//! // Leader: store the script in a directory job store.
//! let locator = StoreLocator::directory(&scratch.path().join("jobstore"))?;
//! let store = JobStore::open(&locator)?;
//! let published = publish(&store, &script, &PublishOptions::default()).await?;
//! assert!(published.resource.url.starts_with("file:/"));
//!
//! // Worker: fetch, verify and install it under a root directory.
//! let root = scratch.path().join("root");
//! let source = open_url(&published.resource.url, &Default::default())?;
//! let installed = install(&published.resource, &root, source, None, &Default::default())?;
//! assert_eq!(std::fs::read_to_string(&installed.path)?, "print('hello from the leader')\n");
//! # Ok(())
//! # }
//! ```

pub mod aws_credentials;
pub mod cache;
pub mod config;
pub mod error;
pub mod fault;
mod gcs_json;
pub mod install;
pub mod localize;
pub mod locator;
pub mod progress;
pub mod publish;
pub mod source;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transfer;
pub mod url;

pub use aws_credentials::AwsCredentialsError;
pub use cache::Cache;
pub use config::StoreConfig;
pub use error::{Result, StoreError};
pub use install::{InstallOptions, Installed, install};
pub use localize::{LocalizeError, LocalizeOptions, Localized, localize};
pub use locator::StoreLocator;
pub use progress::Progress;
pub use publish::{
    DRY_RUN_TOP, DryRun, PublishOptions, Published, SizedEntry, Written, dry_run, publish, refresh,
    write_content,
};
pub use source::ByteSource;
pub use source::open::open_url;
pub use store::JobStore;
pub use transfer::{FetchPolicy, RangeChoice};
