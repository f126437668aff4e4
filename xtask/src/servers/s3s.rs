//! s3s-fs 0.14.1: an S3 server over a local directory that, unlike moto, checks every request's
//! signature, so a tampered presigned URL is refused.

use std::fs;
use std::process::Command;

use anyhow::{Context as _, Result};

use super::{Context, Server};
use crate::tools::CargoTool;

/// The access key and secret the server accepts (any other signature is refused).
const ACCESS_KEY: &str = "resource-test-key";
const SECRET_KEY: &str = "resource-test-secret";
/// The bucket: a directory under the data directory, made before the server starts.
const BUCKET: &str = "conformance";

/// s3s-fs, installed with `cargo install` into `.tools/cargo`. Exports
/// `RESOURCE_TEST_S3S_ENDPOINT`, `RESOURCE_TEST_S3S_ACCESS_KEY`, `RESOURCE_TEST_S3S_SECRET_KEY`
/// and `RESOURCE_TEST_S3S_BUCKET`.
#[derive(Debug)]
pub(crate) struct S3sFs;

impl S3sFs {
    fn data_dir(context: &Context<'_>) -> std::path::PathBuf {
        context.run_dir().join("s3s-fs")
    }
}

impl Server for S3sFs {
    fn name(&self) -> &'static str {
        "s3s-fs"
    }

    fn install(&self, context: &Context<'_>) -> Result<()> {
        CargoTool::s3s_fs(context.project).ensure(context.project.cargo())
    }

    fn prepare(&self, context: &Context<'_>) -> Result<()> {
        let bucket = Self::data_dir(context).join(BUCKET);
        fs::create_dir_all(&bucket).with_context(|| format!("cannot create {}", bucket.display()))
    }

    fn command(&self, context: &Context<'_>, port: u16) -> Result<Command> {
        let mut command = Command::new(CargoTool::s3s_fs(context.project).bin());
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(Self::data_dir(context));
        Ok(command)
    }

    fn env(&self, _context: &Context<'_>, port: u16) -> Vec<(String, String)> {
        [
            (
                "RESOURCE_TEST_S3S_ENDPOINT",
                format!("http://127.0.0.1:{port}"),
            ),
            ("RESOURCE_TEST_S3S_ACCESS_KEY", ACCESS_KEY.to_owned()),
            ("RESOURCE_TEST_S3S_SECRET_KEY", SECRET_KEY.to_owned()),
            ("RESOURCE_TEST_S3S_BUCKET", BUCKET.to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }
}
