//! One conformance suite for every job store: publish, fetch directly and through the URL handed
//! to workers, stream a large resource, skip identical uploads, refresh, and clean up after a
//! failed upload.
//!
//! Local directory and memory stores always run. The cloud stores run against the real servers
//! that `cargo xtask test` starts on 127.0.0.1 and announces through `RESOURCE_TEST_*` variables; a
//! missing variable fails the test (run the suite through `cargo xtask test`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use object_store::ObjectStoreExt;
use resource_core::{Resource, ResourceKind};
use resource_store::testing::noise;
use resource_store::{
    FetchPolicy, InstallOptions, JobStore, PublishOptions, StoreConfig, StoreError, StoreLocator,
    install, open_url, publish, refresh,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A test server's variable, or a failure saying how to get it.
fn required(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name).map_err(|_| {
        format!("{name} is not set: run the suite with `cargo xtask test`, which starts the test servers").into()
    })
}

fn quick_install() -> InstallOptions {
    InstallOptions {
        fetch: FetchPolicy {
            first_backoff: Duration::from_millis(5),
            ..FetchPolicy::default()
        },
        ..InstallOptions::default()
    }
}

/// The leader's inputs: a 12 MiB file (several multipart parts) and a small package.
struct Inputs {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
    package: std::path::PathBuf,
}

fn inputs() -> Result<Inputs, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("big.bin");
    std::fs::write(&file, noise(12 << 20, 3))?;
    let package = dir.path().join("pkg");
    std::fs::create_dir_all(package.join("sub"))?;
    std::fs::write(package.join("__init__.py"), "VALUE = 1\n")?;
    std::fs::write(package.join("sub/data.bin"), noise(300_000, 4))?;
    Ok(Inputs {
        _dir: dir,
        file,
        package,
    })
}

fn check_installed(resource: &Resource, installed: &Path, inputs: &Inputs) -> TestResult {
    match resource.kind {
        ResourceKind::File => assert_eq!(std::fs::read(installed)?, std::fs::read(&inputs.file)?),
        _ => {
            assert_eq!(
                std::fs::read(installed.join("pkg/sub/data.bin"))?,
                std::fs::read(inputs.package.join("sub/data.bin"))?
            );
            assert_eq!(
                std::fs::read_to_string(installed.join("pkg/__init__.py"))?,
                "VALUE = 1\n"
            );
        }
    }
    Ok(())
}

/// The whole conformance run against one store. `url_fetch` says whether the URL handed to
/// workers can be fetched from this process (not for the memory store).
fn conformance(store: &JobStore, url_fetch: bool) -> TestResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let inputs = inputs()?;
    for path in [&inputs.file, &inputs.package] {
        let published = runtime.block_on(publish(store, path, &PublishOptions::default()))?;
        assert!(
            published.uploaded,
            "{}: first create uploads",
            store.shown_as()
        );
        let resource = published.resource;
        let name = resource.path_hash.to_string();

        // Direct fetch through the store's own client.
        let root = tempfile::tempdir()?;
        let installed = install(
            &resource,
            root.path(),
            store.source(&name)?,
            None,
            &quick_install(),
        )?;
        check_installed(&resource, &installed.path, &inputs)?;

        // The URL handed to workers, and a refreshed one.
        if url_fetch {
            let root = tempfile::tempdir()?;
            let source = open_url(&resource.url, &StoreConfig::default())?;
            let installed = install(&resource, root.path(), source, None, &quick_install())?;
            check_installed(&resource, &installed.path, &inputs)?;

            let refreshed = runtime.block_on(refresh(store, &resource))?;
            assert_eq!(refreshed.content_hash, resource.content_hash);
            let root = tempfile::tempdir()?;
            let source = open_url(&refreshed.url, &StoreConfig::default())?;
            install(&refreshed, root.path(), source, None, &quick_install())?;
        }

        // An identical create uploads nothing.
        let again = runtime.block_on(publish(store, path, &PublishOptions::default()))?;
        assert!(
            !again.uploaded,
            "{}: identical create skipped",
            store.shown_as()
        );
        assert_eq!(again.resource.content_hash, resource.content_hash);

        // A failed replacement leaves the previous object, whole.
        let failed = runtime.block_on(store.upload(&name, resource.kind, |out: &mut dyn Write| {
            out.write_all(&noise(11 << 20, 9))
                .map_err(|cause| StoreError::io("/leader/replacement", cause))?;
            Err::<(), _>(StoreError::io(
                "/leader/replacement",
                std::io::Error::other("disk vanished"),
            ))
        }));
        assert!(failed.is_err());
        let root = tempfile::tempdir()?;
        let installed = install(
            &resource,
            root.path(),
            store.source(&name)?,
            None,
            &quick_install(),
        )?;
        check_installed(&resource, &installed.path, &inputs)?;
    }

    // A failed first upload leaves nothing under its name.
    let failed = runtime.block_on(store.upload(
        "never-complete",
        ResourceKind::File,
        |out: &mut dyn Write| {
            out.write_all(&noise(11 << 20, 10))
                .map_err(|cause| StoreError::io("/leader/x", cause))?;
            Err::<(), _>(StoreError::io(
                "/leader/x",
                std::io::Error::other("interrupted"),
            ))
        },
    ));
    assert!(failed.is_err());
    let head = runtime.block_on(store.objects().head(&store.shared_object("never-complete")));
    assert!(
        matches!(head, Err(object_store::Error::NotFound { .. })),
        "{}: an aborted upload left {head:?}",
        store.shown_as()
    );
    Ok(())
}

#[test]
fn local_directory_store_conforms() -> TestResult {
    let dir = tempfile::tempdir()?;
    conformance(
        &JobStore::open(&StoreLocator::directory(dir.path())?)?,
        true,
    )
}

#[test]
fn memory_store_conforms() -> TestResult {
    conformance(&JobStore::open(&StoreLocator::Memory)?, false)
}

/// A fresh bucket on the S3 server at `endpoint`, created with an unsigned request as moto allows.
fn moto_bucket(endpoint: &str) -> Result<String, Box<dyn std::error::Error>> {
    let bucket = format!("conformance-{}", std::process::id());
    let response = ureq::put(&format!("{endpoint}/{bucket}")).send_empty()?;
    assert!(
        response.status().is_success(),
        "creating {bucket}: {}",
        response.status()
    );
    Ok(bucket)
}

fn s3_config(endpoint: &str, key: &str, secret: &str) -> StoreConfig {
    StoreConfig {
        settings: vec![
            ("AWS_ACCESS_KEY_ID".into(), key.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ],
        endpoint: Some(endpoint.to_owned()),
        ..StoreConfig::default()
    }
}

#[test]
fn s3_store_conforms_on_moto() -> TestResult {
    let endpoint = required("RESOURCE_TEST_S3_ENDPOINT")?;
    let bucket = moto_bucket(&endpoint)?;
    let locator: StoreLocator = format!("s3://{bucket}/jobs").parse()?;
    conformance(
        &JobStore::open_with(&locator, &s3_config(&endpoint, "test", "test"))?,
        true,
    )
}
