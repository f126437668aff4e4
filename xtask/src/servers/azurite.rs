//! Azurite 3.x, the Azure Storage emulator: Blob service only, in memory.
//!
//! `object_store` cannot create containers, so one is made once the server is ready, with a
//! request signed by the emulator's well-known account key (Shared Key authorization).

use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Context, Server, check_success, http_agent};
use crate::tools::NpmTool;

/// The emulator's fixed account and key, published in Azurite's documentation.
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The container made for the tests.
const CONTAINER: &str = "conformance";
/// The Blob service version the set-up request speaks.
const API_VERSION: &str = "2023-11-03";

/// Azurite's Blob service, installed with `npm install` into `.tools/npm`. Exports
/// `RESOURCE_TEST_AZURITE_ENDPOINT` (`http://127.0.0.1:PORT/devstoreaccount1`),
/// `RESOURCE_TEST_AZURITE_ACCOUNT`, `RESOURCE_TEST_AZURITE_KEY` and
/// `RESOURCE_TEST_AZURITE_CONTAINER`.
#[derive(Debug)]
pub(crate) struct Azurite;

impl Server for Azurite {
    fn name(&self) -> &'static str {
        "azurite"
    }

    fn install(&self, context: &Context<'_>) -> Result<()> {
        NpmTool::azurite(context.project).ensure(&["azurite-blob"])
    }

    fn command(&self, context: &Context<'_>, port: u16) -> Result<Command> {
        // With in-memory persistence Azurite writes nothing, but its debug log and any
        // workspace file would land in the working directory: keep that in the run directory.
        let workdir = context.run_dir().join("azurite");
        std::fs::create_dir_all(&workdir)
            .with_context(|| format!("cannot create {}", workdir.display()))?;
        let mut command = Command::new(NpmTool::azurite(context.project).bin("azurite-blob"));
        command
            .current_dir(workdir)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            // Telemetry is off, always: tests never talk to anything but 127.0.0.1.
            .args([
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ]);
        Ok(command)
    }

    fn set_up(&self, _context: &Context<'_>, port: u16) -> Result<()> {
        create_container(port, CONTAINER)
    }

    fn env(&self, _context: &Context<'_>, port: u16) -> Vec<(String, String)> {
        [
            (
                "RESOURCE_TEST_AZURITE_ENDPOINT",
                format!("http://127.0.0.1:{port}/{ACCOUNT}"),
            ),
            ("RESOURCE_TEST_AZURITE_ACCOUNT", ACCOUNT.to_owned()),
            ("RESOURCE_TEST_AZURITE_KEY", KEY.to_owned()),
            ("RESOURCE_TEST_AZURITE_CONTAINER", CONTAINER.to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }
}

/// Creates `container` with a Shared Key signed `PUT ?restype=container`.
fn create_container(port: u16, container: &str) -> Result<()> {
    let date = http_date(SystemTime::now())?;
    // The emulator's URLs are path-style, so the account appears twice in the canonical resource:
    // once as the account, once as the first path segment.
    let canonical_resource = format!("/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container");
    let authorization = shared_key("PUT", &date, &canonical_resource)?;
    let url = format!("http://127.0.0.1:{port}/{ACCOUNT}/{container}?restype=container");
    let response = http_agent()
        .put(&url)
        .header("x-ms-date", &date)
        .header("x-ms-version", API_VERSION)
        .header("Authorization", &authorization)
        .send_empty()
        .with_context(|| format!("PUT {url}"))?;
    check_success(&format!("creating container {container}"), response)
}

/// The `Authorization` header of a body-less request with only `x-ms-date` and `x-ms-version`
/// headers: `SharedKey ACCOUNT:base64(HMAC-SHA256(key, string to sign))`.
fn shared_key(verb: &str, date: &str, canonical_resource: &str) -> Result<String> {
    // VERB, then eleven standard headers, all empty here (Content-Length 0 is signed as empty),
    // then the canonical x-ms-* headers and the canonical resource.
    let string_to_sign = format!(
        "{verb}\n{}x-ms-date:{date}\nx-ms-version:{API_VERSION}\n{canonical_resource}",
        "\n".repeat(11)
    );
    let key = BASE64
        .decode(KEY)
        .context("the emulator's account key is not base64")?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signature = ring::hmac::sign(&key, string_to_sign.as_bytes());
    Ok(format!(
        "SharedKey {ACCOUNT}:{}",
        BASE64.encode(signature.as_ref())
    ))
}

/// `time` as an RFC 1123 HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), as `x-ms-date` wants.
fn http_date(time: SystemTime) -> Result<String> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`), for the
    // non-negative days a clock after 1970 gives.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    let weekday = DAYS[usize::try_from(days % 7)?];
    let month_name = MONTHS[usize::try_from(month - 1)?];
    Ok(format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} GMT",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn http_dates_are_rfc_1123() -> Result<()> {
        let at = |seconds: u64| http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(at(0)?, "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777)?, "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400)?, "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_709_251_199)?, "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(at(4_102_444_800)?, "Fri, 01 Jan 2100 00:00:00 GMT");
        Ok(())
    }

    #[test]
    fn shared_key_matches_a_known_signature() -> Result<()> {
        // The same string to sign through Python's hmac and base64 modules; that Azurite accepts
        // the string itself is checked by every run's set-up.
        let header = shared_key(
            "PUT",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "/devstoreaccount1/devstoreaccount1/c\nrestype:container",
        )?;
        assert_eq!(
            header,
            "SharedKey devstoreaccount1:6AlyUFePqz46+YeFvwMECrIWN6dsKrzouu3YrZfjjOU="
        );
        Ok(())
    }
}
