//! The "done when", end to end against every cloud server that `cargo xtask test` starts:
//! `eval "$(resource create ./pkg --store s3://…)"` in one shell, and `resource download ./pkg` in
//! another that has only the exported line (plus credentials for direct URLs), installing a tree
//! equal to the leader's byte for byte.
//!
//! Each server is one [`ServerCase`] and goes through the same [`check`]: a presigned download, a
//! direct `s3://`/`az://`/`gs://` download, a refreshed line used by a fresh worker, an identical
//! create that uploads nothing, and, where the server enforces it, an expired URL refused quickly
//! with a hint to refresh and nothing installed.
//!
//! The servers are announced through `RESOURCE_TEST_*` variables; a missing one fails the test
//! (run it with `cargo xtask test -- -p resource-cli --test cloud`), it is never skipped.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use resource_store::testing::{create_fake_gcs_bucket, create_moto_bucket, noise, visible_entries};

type Error = Box<dyn std::error::Error>;
type TestResult = Result<(), Error>;

const RESOURCE: &str = env!("CARGO_BIN_EXE_resource");

/// The leader path, as the issue writes it; workers look it up by the same string.
const PKG: &str = "./pkg";

/// How long a refused download may take: a 403 is not retried, so it fails after a request or
/// two (about 15 ms here), far below the seconds the retry and resume backoffs would add.
const QUICK_FAILURE: Duration = Duration::from_secs(5);

/// A test server's variable, or a failure saying how to get it.
fn required(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| {
        format!("{name} is not set: run the suite with `cargo xtask test`, which starts the test servers").into()
    })
}

/// One server, and what the leader and the workers need to reach it.
struct ServerCase {
    /// `--store`: a prefix of its own for this run.
    locator: String,
    /// `--endpoint`.
    endpoint: String,
    /// The leader's only variables: the credentials, as the standard `AWS_*`/`AZURE_*`/`GOOGLE_*`.
    credentials: Vec<(&'static str, String)>,
    /// What a worker reading direct URLs needs besides the exported line: the credentials and the
    /// endpoint as the client's own variable (`download` takes no `--endpoint`).
    direct_env: Vec<(&'static str, String)>,
    /// The query parameter that holds a presigned URL's signature.
    signature_param: &'static str,
    /// Whether the server refuses a presigned URL once it has expired.
    enforces_expiry: bool,
    /// Strings that must never be printed (secret keys).
    secrets: Vec<String>,
}

/// S3 on moto, which accepts any signature.
///
/// Not in the expiry case: moto checks neither signatures nor `X-Amz-Expires` (tried: a URL made
/// with `--url-ttl 1` still downloads 2.5 s later), so the expiry case runs on s3s-fs instead.
fn moto_s3() -> Result<ServerCase, Error> {
    let endpoint = required("RESOURCE_TEST_S3_ENDPOINT")?;
    let bucket = create_moto_bucket(&endpoint, "clouds3")?;
    let secret = "cloud-test-secret-for-moto".to_owned();
    let credentials = vec![
        ("AWS_ACCESS_KEY_ID", "cloud-test-key".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", secret.clone()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ];
    Ok(ServerCase {
        locator: format!("s3://{bucket}/jobs"),
        direct_env: s3_direct_env(&credentials, &endpoint),
        endpoint,
        credentials,
        signature_param: "X-Amz-Signature=",
        enforces_expiry: false,
        secrets: vec![secret],
    })
}

/// S3 on s3s-fs, which checks every signature and a presigned URL's expiry.
fn s3s_fs() -> Result<ServerCase, Error> {
    let endpoint = required("RESOURCE_TEST_S3S_ENDPOINT")?;
    let secret = required("RESOURCE_TEST_S3S_SECRET_KEY")?;
    let bucket = required("RESOURCE_TEST_S3S_BUCKET")?;
    let credentials = vec![
        (
            "AWS_ACCESS_KEY_ID",
            required("RESOURCE_TEST_S3S_ACCESS_KEY")?,
        ),
        ("AWS_SECRET_ACCESS_KEY", secret.clone()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ];
    Ok(ServerCase {
        locator: format!("s3://{bucket}/cloud-{}", std::process::id()),
        direct_env: s3_direct_env(&credentials, &endpoint),
        endpoint,
        credentials,
        signature_param: "X-Amz-Signature=",
        enforces_expiry: true,
        secrets: vec![secret],
    })
}

fn s3_direct_env(
    credentials: &[(&'static str, String)],
    endpoint: &str,
) -> Vec<(&'static str, String)> {
    let mut env = credentials.to_vec();
    env.push(("AWS_ENDPOINT", endpoint.to_owned()));
    env.push(("AWS_ALLOW_HTTP", "true".to_owned()));
    env
}

/// Azure Blob on Azurite, with SAS URLs signed by the account key; Azurite checks the SAS
/// signature and its expiry (`se`).
fn azurite() -> Result<ServerCase, Error> {
    let endpoint = required("RESOURCE_TEST_AZURITE_ENDPOINT")?;
    let key = required("RESOURCE_TEST_AZURITE_KEY")?;
    let container = required("RESOURCE_TEST_AZURITE_CONTAINER")?;
    let credentials = vec![
        (
            "AZURE_STORAGE_ACCOUNT_NAME",
            required("RESOURCE_TEST_AZURITE_ACCOUNT")?,
        ),
        ("AZURE_STORAGE_ACCOUNT_KEY", key.clone()),
    ];
    let mut direct_env = credentials.clone();
    direct_env.push(("AZURE_STORAGE_ENDPOINT", endpoint.clone()));
    direct_env.push(("AZURE_ALLOW_HTTP", "true".to_owned()));
    Ok(ServerCase {
        locator: format!("az://{container}/cloud-{}", std::process::id()),
        endpoint,
        credentials,
        direct_env,
        signature_param: "sig=",
        enforces_expiry: true,
        secrets: vec![key],
    })
}

/// GCS on fake-gcs-server, signing with the run's service-account key (tokens and signed URLs
/// are made locally, nothing asks a Google host).
///
/// Not in the expiry case: fake-gcs-server checks neither signatures nor `X-Goog-Expires`.
fn gcs_on_fake_gcs() -> Result<ServerCase, Error> {
    let endpoint = required("RESOURCE_TEST_GCS_READ_ENDPOINT")?;
    let service_account = required("RESOURCE_TEST_GCS_SERVICE_ACCOUNT")?;
    let account: serde_json::Value = serde_json::from_slice(&fs::read(&service_account)?)?;
    // One line of the private key's base64 body stands for the whole key.
    let key_line = account["private_key"]
        .as_str()
        .and_then(|key| key.lines().nth(2))
        .ok_or_else(|| format!("{service_account}: no private_key"))?
        .to_owned();
    let bucket = create_fake_gcs_bucket(&endpoint, "cloudgcs")?;
    let credentials = vec![("GOOGLE_SERVICE_ACCOUNT", service_account)];
    let mut direct_env = credentials.clone();
    direct_env.push(("GOOGLE_BASE_URL", endpoint.clone()));
    Ok(ServerCase {
        locator: format!("gs://{bucket}/jobs"),
        endpoint,
        credentials,
        direct_env,
        signature_param: "X-Goog-Signature=",
        enforces_expiry: false,
        secrets: vec![key_line],
    })
}

/// Runs `resource ARGS` with exactly `env` (nothing inherited) in `cwd`.
fn resource(cwd: &Path, args: &[&str], env: &[(&str, String)]) -> std::io::Result<Output> {
    Command::new(RESOURCE)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(name, value)| (name, value)))
        .output()
}

/// Runs a shell that has only `exports` evaluated and `env` set, and in it `resource ARGS`.
fn shell(cwd: &Path, exports: &str, env: &[(&str, String)], args: &str) -> std::io::Result<Output> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{exports}\nexec \"$RESOURCE\" {args}"))
        .current_dir(cwd)
        .env_clear()
        .env("RESOURCE", RESOURCE)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .output()
}

/// A worker: a shell with only `exports`, `JTRES_ROOT` and `extra` (credentials, for direct URLs).
fn worker_shell(
    cwd: &Path,
    exports: &str,
    root: &Path,
    extra: &[(&str, String)],
    args: &str,
) -> std::io::Result<Output> {
    let mut env = vec![("JTRES_ROOT", root.display().to_string())];
    env.extend(extra.iter().cloned());
    shell(cwd, exports, &env, args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_owned()
}

/// `output`'s standard output, if the command succeeded; else a failure naming `what`.
fn succeeded(output: &Output, what: &str) -> Result<String, Error> {
    if !output.status.success() {
        return Err(format!("{what}: {} ({})", stderr(output), output.status).into());
    }
    Ok(stdout(output))
}

/// Single-quoted for the shell (locators and endpoints hold no quote).
fn quoted(text: &str) -> String {
    format!("'{text}'")
}

/// Every entry under `dir` by relative path: a file's bytes, or `None` for a directory.
fn tree(dir: &Path) -> Result<BTreeMap<PathBuf, Option<Vec<u8>>>, Error> {
    fn walk(
        base: &Path,
        dir: &Path,
        into: &mut BTreeMap<PathBuf, Option<Vec<u8>>>,
    ) -> Result<(), Error> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let relative = path.strip_prefix(base)?.to_path_buf();
            if path.is_dir() {
                into.insert(relative, None);
                walk(base, &path, into)?;
            } else {
                into.insert(relative, Some(fs::read(&path)?));
            }
        }
        Ok(())
    }
    let mut found = BTreeMap::new();
    walk(dir, dir, &mut found)?;
    Ok(found)
}

/// The leader's package: `__init__.py`, a module, and a nested binary data file.
fn make_package(dir: &Path) -> TestResult {
    let pkg = dir.join("pkg");
    fs::create_dir_all(pkg.join("data/nested"))?;
    fs::write(pkg.join("__init__.py"), "from .greet import hello\n")?;
    fs::write(
        pkg.join("greet.py"),
        "def hello(name):\n    return f'h\u{e9}llo {name}'\n",
    )?;
    fs::write(pkg.join("data/nested/table.bin"), noise(300_000, 17))?;
    Ok(())
}

/// The name of the variable an export line sets.
fn exported_name(line: &str) -> Result<&str, Error> {
    line.strip_prefix("export ")
        .and_then(|rest| rest.split_once('='))
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("JTRES_"))
        .ok_or_else(|| format!("not one export line: {line:?}").into())
}

/// What a worker sees registered for the package in a shell with only `exports`.
fn lookup(dir: &Path, exports: &str) -> Result<serde_json::Value, Error> {
    let output = shell(dir, exports, &[], &format!("lookup {PKG} --json"))?;
    Ok(serde_json::from_str(&succeeded(&output, "lookup")?)?)
}

fn string<'a>(json: &'a serde_json::Value, key: &str) -> Result<&'a str, Error> {
    json[key]
        .as_str()
        .ok_or_else(|| format!("no string {key} in {json}").into())
}

impl ServerCase {
    fn store_args(&self) -> [&str; 4] {
        ["--store", &self.locator, "--endpoint", &self.endpoint]
    }

    /// The leader: `resource create ./pkg --store … --endpoint … EXTRA` with only the credentials;
    /// returns the one line it prints.
    fn create(&self, dir: &Path, extra: &[&str]) -> Result<String, Error> {
        let mut args = vec!["create", PKG];
        args.extend(self.store_args());
        args.extend(extra);
        let line = succeeded(&resource(dir, &args, &self.credentials)?, "create")?;
        exported_name(&line)?;
        assert_eq!(line.lines().count(), 1, "{line}");
        self.assert_no_secret(&line);
        Ok(line)
    }

    /// A leader shell that has `exports`: `resource refresh ./pkg --store … EXTRA`.
    fn refresh(&self, dir: &Path, exports: &str, extra: &str) -> Result<String, Error> {
        let args = format!(
            "refresh {PKG} --store {} --endpoint {} {extra}",
            quoted(&self.locator),
            quoted(&self.endpoint)
        );
        let output = shell(dir, exports, &self.credentials, &args)?;
        let line = succeeded(&output, "refresh")?;
        assert_eq!(exported_name(&line)?, exported_name(exports)?);
        assert_eq!(line.lines().count(), 1, "{line}");
        self.assert_no_secret(&line);
        Ok(line)
    }

    fn assert_no_secret(&self, text: &str) {
        for secret in &self.secrets {
            assert!(!text.contains(secret.as_str()), "a secret is shown: {text}");
        }
    }

    /// Checks a presigned URL: it points at the server and is signed.
    fn assert_presigned(&self, url: &str) {
        assert!(url.starts_with(&self.endpoint), "not on the server: {url}");
        assert!(url.contains(self.signature_param), "not signed: {url}");
    }

    /// A fresh worker with `exports` and `extra` downloads the package into `root`; the installed
    /// tree must equal the leader's.
    fn download_equal(
        &self,
        dir: &Path,
        exports: &str,
        root: &Path,
        extra: &[(&str, String)],
    ) -> TestResult {
        let output = worker_shell(dir, exports, root, extra, &format!("download {PKG}"))?;
        let local = PathBuf::from(succeeded(&output, "download")?);
        let content_hash = string(&lookup(dir, exports)?, "contentHash")?.to_owned();
        assert_eq!(local, root.join(&content_hash));
        assert_eq!(visible_entries(&local), ["pkg"]);
        assert!(
            tree(&local.join("pkg"))? == tree(&dir.join("pkg"))?,
            "the installed tree differs from the leader's"
        );
        assert_eq!(
            visible_entries(root),
            [content_hash.as_str()],
            "no temporary left"
        );
        Ok(())
    }
}

/// The whole journey against one server.
fn check(case: &ServerCase) -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    make_package(dir)?;

    // The leader stores the package; a worker with only the exported line installs it through the
    // presigned URL.
    let exports = case.create(dir, &[])?;
    let registered = lookup(dir, &exports)?;
    assert_eq!(registered["kind"], "dir");
    assert_eq!(registered["name"], "pkg");
    let presigned = string(&registered, "url")?.to_owned();
    case.assert_presigned(&presigned);
    case.download_equal(dir, &exports, &dir.join("root-presigned"), &[])?;

    // An identical create uploads nothing.
    let mut args = vec!["create", PKG, "--json"];
    args.extend(case.store_args());
    let again: serde_json::Value = serde_json::from_str(&succeeded(
        &resource(dir, &args, &case.credentials)?,
        "identical create",
    )?)?;
    assert_eq!(again["uploaded"], 0, "{again}");
    assert_eq!(again["contentHash"], registered["contentHash"]);
    assert_eq!(again["pathHash"], registered["pathHash"]);

    // A leader shell with the exported line refreshes it; a fresh worker uses the new line. A
    // different validity makes the new signature differ even within the same second.
    let refreshed = case.refresh(dir, &exports, "--url-ttl 7200")?;
    let refreshed_url = string(&lookup(dir, &refreshed)?, "url")?.to_owned();
    case.assert_presigned(&refreshed_url);
    assert_ne!(refreshed_url, presigned, "refresh re-signs the URL");
    case.download_equal(dir, &refreshed, &dir.join("root-refreshed"), &[])?;

    // A direct URL (the object under `<prefix>/shared/`), read by a worker that has the
    // credentials.
    let direct = case.create(dir, &["--direct-url"])?;
    let registered_direct = lookup(dir, &direct)?;
    assert_eq!(
        string(&registered_direct, "url")?,
        format!(
            "{}/shared/{}",
            case.locator,
            string(&registered_direct, "pathHash")?
        )
    );
    case.download_equal(dir, &direct, &dir.join("root-direct"), &case.direct_env)?;

    if case.enforces_expiry {
        expired_url_is_refused(case, dir)?;
    }
    Ok(())
}

/// A URL valid for one second, used two seconds later: the download fails at once, tells the
/// user to refresh without showing the signature, and installs nothing; the refreshed line then
/// works in the same root.
fn expired_url_is_refused(case: &ServerCase, dir: &Path) -> TestResult {
    let exports = case.create(dir, &["--url-ttl", "1"])?;
    let url = string(&lookup(dir, &exports)?, "url")?.to_owned();
    case.assert_presigned(&url);
    std::thread::sleep(Duration::from_millis(2500));

    let root = dir.join("root-expired");
    let started = Instant::now();
    let output = worker_shell(dir, &exports, &root, &[], &format!("download {PKG}"))?;
    let took = started.elapsed();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(took < QUICK_FAILURE, "refused after {took:?}: {message}");
    assert!(message.contains("resource refresh"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    let signature = url
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix(case.signature_param))
        .ok_or_else(|| format!("no signature in {url}"))?;
    assert!(
        !message.contains(signature),
        "the signature is shown: {message}"
    );
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    assert!(
        visible_entries(&root).is_empty(),
        "left behind: {:?}",
        visible_entries(&root)
    );

    let refreshed = case.refresh(dir, &exports, "")?;
    case.download_equal(dir, &refreshed, &root, &[])
}

#[test]
fn s3_on_moto() -> TestResult {
    check(&moto_s3()?)
}

#[test]
fn s3_on_s3s_fs() -> TestResult {
    check(&s3s_fs()?)
}

#[test]
fn azure_on_azurite() -> TestResult {
    check(&azurite()?)
}

#[test]
fn gcs_on_fake_gcs_server() -> TestResult {
    check(&gcs_on_fake_gcs()?)
}
