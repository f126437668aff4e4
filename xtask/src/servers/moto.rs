//! moto 5 (`moto[server]` from `xtask/requirements-test.txt`): S3 in memory (large objects
//! spooled to the run's directory), which accepts any signature.

use std::process::Command;

use anyhow::{Result, bail};

use super::{Context, Server};

/// moto: exports `RESOURCE_TEST_S3_ENDPOINT`, `http://127.0.0.1:PORT`. Buckets are made by the tests with an unsigned `PUT /BUCKET`.
#[derive(Debug)]
pub(crate) struct Moto;

impl Server for Moto {
    fn name(&self) -> &'static str {
        "moto"
    }

    fn install(&self, context: &Context<'_>) -> Result<()> {
        // Installed with the test venv; `Venv::ensure` checks the script exists.
        let script = context.test_venv.bin("moto_server");
        if !script.is_file() {
            bail!("{} is missing", script.display());
        }
        Ok(())
    }

    fn command(&self, context: &Context<'_>, port: u16) -> Result<Command> {
        let mut command = Command::new(context.test_venv.bin("moto_server"));
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        // moto keeps objects in memory only up to about 5 MiB and spools larger ones to
        // temporary files; those belong to the run's directory (on tmpfs for the benchmarks),
        // not to whatever disk holds the system's temporary directory.
        command.env("TMPDIR", context.run_dir());
        Ok(command)
    }

    fn env(&self, _context: &Context<'_>, port: u16) -> Vec<(String, String)> {
        vec![(
            "RESOURCE_TEST_S3_ENDPOINT".to_owned(),
            format!("http://127.0.0.1:{port}"),
        )]
    }
}
