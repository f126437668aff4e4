//! S3 credentials where users keep them, against s3s-fs (which checks every signature): a fake
//! `HOME` with `~/.aws/credentials`, a named profile in `~/.aws/config`, and a
//! `credential_process` script, also against moto; with nothing anywhere, the error says what
//! was tried.
//!
//! Every process here runs with `AWS_EC2_METADATA_DISABLED=true`, so that the credential chain
//! never asks the instance-metadata endpoint. The server is announced by `cargo xtask test`
//! (`RESOURCE_TEST_S3S_*`); a missing one fails the test.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use resource_store::testing::{create_moto_bucket, visible_entries};

type Error = Box<dyn std::error::Error>;
type TestResult = Result<(), Error>;

const RESOURCE: &str = env!("CARGO_BIN_EXE_resource");

/// A test server's variable, or a failure saying how to get it.
fn required(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| {
        format!("{name} is not set: run the suite with `cargo xtask test`, which starts the test servers").into()
    })
}

/// The s3s-fs server: its endpoint, bucket, and the one key pair it accepts.
struct S3s {
    endpoint: String,
    bucket: String,
    access_key: String,
    secret_key: String,
}

fn s3s() -> Result<S3s, Error> {
    Ok(S3s {
        endpoint: required("RESOURCE_TEST_S3S_ENDPOINT")?,
        bucket: required("RESOURCE_TEST_S3S_BUCKET")?,
        access_key: required("RESOURCE_TEST_S3S_ACCESS_KEY")?,
        secret_key: required("RESOURCE_TEST_S3S_SECRET_KEY")?,
    })
}

/// Runs `resource ARGS` in `cwd` with only `HOME=home`, instance metadata disabled, a PATH for
/// `credential_process`'s shell, and `env`.
fn resource(
    cwd: &Path,
    home: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::io::Result<Output> {
    Command::new(RESOURCE)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_owned()
}

fn write(path: &Path, contents: &str) -> TestResult {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents)?;
    Ok(())
}

/// Creates `flow.py` in `s3://BUCKET/PREFIX` with the credentials `home` holds, then downloads it
/// as a worker with direct `s3://` URLs and the same `home`; checks the bytes.
fn create_and_download(
    server: &S3s,
    dir: &Path,
    home: &Path,
    prefix: &str,
    extra: &[&str],
    worker_env: &[(&str, &str)],
) -> TestResult {
    let script = format!("print('{prefix}')\n");
    fs::write(dir.join("flow.py"), &script)?;
    let locator = format!("s3://{}/{prefix}-{}", server.bucket, std::process::id());
    let mut args = vec![
        "create",
        "flow.py",
        "--store",
        &locator,
        "--endpoint",
        &server.endpoint,
        "--direct-url",
        "--json",
    ];
    args.extend_from_slice(extra);
    let created = resource(dir, home, &args, &[])?;
    assert!(created.status.success(), "{prefix}: {}", stderr(&created));
    let json: serde_json::Value = serde_json::from_slice(&created.stdout)?;
    let url = json["url"].as_str().ok_or("no url")?;
    assert!(url.starts_with("s3://"), "{url}");
    let var = json["envName"].as_str().ok_or("no envName")?;
    let value = json["envValue"].as_str().ok_or("no envValue")?;

    let root = dir.join(format!("root-{prefix}"));
    let root_text = root.to_str().ok_or("not UTF-8")?;
    let mut env = vec![
        (var, value),
        ("JTRES_ROOT", root_text),
        ("AWS_ENDPOINT", server.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    env.extend_from_slice(worker_env);
    let downloaded = resource(dir, home, &["download", "flow.py"], &env)?;
    assert!(
        downloaded.status.success(),
        "{prefix}: {}",
        stderr(&downloaded)
    );
    let local = String::from_utf8(downloaded.stdout)?;
    assert_eq!(fs::read_to_string(local.trim_end())?, script);
    Ok(())
}

/// moto, which accepts any signature: the chain's credentials reach a second S3 implementation.
fn moto() -> Result<S3s, Error> {
    let endpoint = required("RESOURCE_TEST_S3_ENDPOINT")?;
    let bucket = create_moto_bucket(&endpoint, "awscreds")?;
    Ok(S3s {
        endpoint,
        bucket,
        access_key: "aws-credentials-test-key".to_owned(),
        secret_key: "aws-credentials-test-secret".to_owned(),
    })
}

#[test]
fn credentials_from_the_aws_cli_files_profiles_and_credential_process() -> TestResult {
    credential_cases(&s3s()?, true)
}

#[test]
fn credentials_from_the_aws_cli_files_profiles_and_credential_process_on_moto() -> TestResult {
    credential_cases(&moto()?, false)
}

/// Creates and downloads with the credentials of `aws configure`'s files, a named profile and a
/// `credential_process`; where `server` checks signatures, a wrong secret is refused too.
fn credential_cases(server: &S3s, checks_signatures: bool) -> TestResult {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();

    // What `aws configure` writes.
    let home = dir.join("home-default");
    write(
        &home.join(".aws/credentials"),
        &format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            server.access_key, server.secret_key
        ),
    )?;
    write(&home.join(".aws/config"), "[default]\nregion = us-east-1\n")?;
    create_and_download(server, dir, &home, "default", &[], &[])?;

    // A named profile in ~/.aws/config, chosen by --profile on the leader and AWS_PROFILE on the
    // worker; the default profile holds a wrong secret, which s3s-fs refuses.
    let home = dir.join("home-profile");
    write(
        &home.join(".aws/credentials"),
        &format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = not-the-secret\n",
            server.access_key
        ),
    )?;
    write(
        &home.join(".aws/config"),
        &format!(
            "[default]\nregion = us-east-1\n\n[profile ci]\nregion = us-east-1\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            server.access_key, server.secret_key
        ),
    )?;
    create_and_download(
        server,
        dir,
        &home,
        "profile",
        &["--profile", "ci"],
        &[("AWS_PROFILE", "ci")],
    )?;
    // The default profile's wrong secret is refused: the chain's credentials are what signs.
    if checks_signatures {
        refused_with_the_default_profile(server, dir, &home)?;
    }

    // A credential_process script, as SSO helpers and vaults provide.
    let home = dir.join("home-process");
    let script = home.join("bin/creds.sh");
    write(
        &script,
        &format!(
            "#!/bin/sh\nprintf '%s' '{{\"Version\": 1, \"AccessKeyId\": \"{}\", \"SecretAccessKey\": \"{}\"}}'\n",
            server.access_key, server.secret_key
        ),
    )?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    write(
        &home.join(".aws/config"),
        &format!(
            "[profile vault]\nregion = us-east-1\ncredential_process = {}\n",
            script.display()
        ),
    )?;
    create_and_download(
        server,
        dir,
        &home,
        "process",
        &["--profile", "vault"],
        &[("AWS_PROFILE", "vault")],
    )?;
    Ok(())
}

/// With `home`'s default profile holding a wrong secret, a create is refused and the secret is
/// never printed.
fn refused_with_the_default_profile(server: &S3s, dir: &Path, home: &Path) -> TestResult {
    fs::write(dir.join("flow.py"), "print(0)\n")?;
    let locator = format!("s3://{}/refused-{}", server.bucket, std::process::id());
    let refused = resource(
        dir,
        home,
        &[
            "create",
            "flow.py",
            "--store",
            &locator,
            "--endpoint",
            &server.endpoint,
        ],
        &[],
    )?;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        !stderr(&refused).contains("not-the-secret"),
        "{}",
        stderr(&refused)
    );
    Ok(())
}

/// The region comes from the chosen profile in `~/.aws/config` when no variable names one, as the
/// AWS CLI takes it: the presigned URL is signed for it, and the worker fetches through it.
#[test]
fn the_region_comes_from_the_profile_in_the_aws_config_file() -> TestResult {
    let server = s3s()?;
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let home = dir.join("home-region");
    write(
        &home.join(".aws/config"),
        &format!(
            "[default]\nregion = us-east-1\n\n[profile eu]\nregion = eu-west-2\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            server.access_key, server.secret_key
        ),
    )?;
    let script = "print('eu')\n";
    fs::write(dir.join("flow.py"), script)?;
    let locator = format!("s3://{}/region-{}", server.bucket, std::process::id());
    let args = [
        "create",
        "flow.py",
        "--store",
        &locator,
        "--endpoint",
        &server.endpoint,
        "--profile",
        "eu",
        "--json",
    ];
    let created = resource(dir, &home, &args, &[])?;
    assert!(created.status.success(), "{}", stderr(&created));
    let json: serde_json::Value = serde_json::from_slice(&created.stdout)?;
    let url = json["url"].as_str().ok_or("no url")?;
    assert!(
        url.contains("%2Feu-west-2%2Fs3%2Faws4_request") || url.contains("/eu-west-2/s3/"),
        "the presigned URL is not signed for the profile's region: {url}"
    );
    let var = json["envName"].as_str().ok_or("no envName")?;
    let value = json["envValue"].as_str().ok_or("no envValue")?;
    let root = dir.join("root-region");
    let root_text = root.to_str().ok_or("not UTF-8")?;
    let downloaded = resource(
        dir,
        &home,
        &["download", "flow.py"],
        &[(var, value), ("JTRES_ROOT", root_text)],
    )?;
    assert!(downloaded.status.success(), "{}", stderr(&downloaded));
    let local = String::from_utf8(downloaded.stdout)?;
    assert_eq!(fs::read_to_string(local.trim_end())?, script);
    Ok(())
}

#[test]
fn no_credentials_anywhere_names_what_was_tried() -> TestResult {
    let server = s3s()?;
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let home = dir.join("empty-home");
    fs::create_dir(&home)?;
    fs::write(dir.join("flow.py"), "print(1)\n")?;
    let locator = format!("s3://{}/nothing-{}", server.bucket, std::process::id());
    let output = resource(
        dir,
        &home,
        &[
            "create",
            "flow.py",
            "--store",
            &locator,
            "--endpoint",
            &server.endpoint,
        ],
        &[],
    )?;
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    for tried in [
        "no AWS credentials found",
        "AWS_ACCESS_KEY_ID",
        "~/.aws/credentials",
        "~/.aws/config",
        "credential_process",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "instance metadata",
        "--profile",
    ] {
        assert!(message.contains(tried), "{tried:?} not named: {message}");
    }
    assert!(!message.contains("169.254.169.254"), "{message}");
    assert!(visible_entries(&dir.join("root")).is_empty());
    Ok(())
}
