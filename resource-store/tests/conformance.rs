//! One conformance suite for every job store: publish, fetch directly and through the URL handed
//! to workers, stream a large resource, skip identical uploads, refresh, and clean up after a
//! failed upload.
//!
//! Local directory and memory stores always run. The cloud stores run against the real servers
//! that `cargo xtask test` starts on 127.0.0.1 and announces through `RESOURCE_TEST_*` variables; a
//! missing variable fails the test (run the suite through `cargo xtask test`):
//!
//! - S3 on moto (accepts any signature) and on s3s-fs (checks signatures: a tampered presigned
//!   URL is refused);
//! - Azure Blob on Azurite, with SAS URLs signed by the account key;
//! - GCS on fake-gcs-server (written through the JSON API, read through the XML API), signing
//!   with a service-account key made for the run, so that nothing ever asks a Google host for a
//!   token.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStoreExt;
use resource_core::{Resource, ResourceKind};
use resource_store::testing::{
    DelayProxy, ProxyOptions, create_fake_gcs_bucket, create_moto_bucket, noise,
};
use resource_store::{
    ByteSource, FetchPolicy, InstallOptions, JobStore, PublishOptions, StoreConfig, StoreError,
    StoreLocator, install, open_url, publish, refresh,
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
/// Uploads 11 MiB (more than two multipart parts) under `name`, then fails as a leader whose
/// disk vanished would; the upload must report the failure.
fn failing_upload(
    runtime: &tokio::runtime::Runtime,
    store: &JobStore,
    name: &str,
    kind: ResourceKind,
) -> TestResult {
    let failed = runtime.block_on(store.upload(name, kind, |out: &mut dyn Write| {
        out.write_all(&noise(11 << 20, 9))
            .map_err(|cause| StoreError::io("/leader/input", cause))?;
        Err::<(), _>(StoreError::io(
            "/leader/input",
            std::io::Error::other("disk vanished"),
        ))
    }));
    match failed {
        Err(StoreError::Io { .. }) => Ok(()),
        other => Err(format!("{}: a failing upload gave {other:?}", store.shown_as()).into()),
    }
}

/// Installs `resource` from `source` into a fresh root and checks the installed copy.
fn install_and_check(
    resource: &Resource,
    source: Arc<dyn ByteSource>,
    inputs: &Inputs,
) -> TestResult {
    let root = tempfile::tempdir()?;
    let installed = install(resource, root.path(), source, None, &quick_install())?;
    check_installed(resource, &installed.path, inputs)
}

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
        install_and_check(&resource, store.source(&name)?, &inputs)?;

        // The URL handed to workers, and a refreshed one.
        if url_fetch {
            install_and_check(
                &resource,
                open_url(&resource.url, &StoreConfig::default())?,
                &inputs,
            )?;

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
        failing_upload(&runtime, store, &name, resource.kind)?;
        install_and_check(&resource, store.source(&name)?, &inputs)?;
    }

    // A failed first upload leaves nothing under its name.
    failing_upload(&runtime, store, "never-complete", ResourceKind::File)?;
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
    let bucket = create_moto_bucket(&endpoint, "conformance")?;
    let locator: StoreLocator = format!("s3://{bucket}/jobs").parse()?;
    conformance(
        &JobStore::open_with(&locator, &s3_config(&endpoint, "test", "test"))?,
        true,
    )
}

#[test]
fn s3_store_conforms_on_s3s_fs() -> TestResult {
    let endpoint = required("RESOURCE_TEST_S3S_ENDPOINT")?;
    let key = required("RESOURCE_TEST_S3S_ACCESS_KEY")?;
    let secret = required("RESOURCE_TEST_S3S_SECRET_KEY")?;
    let bucket = required("RESOURCE_TEST_S3S_BUCKET")?;
    let locator: StoreLocator = format!("s3://{bucket}/jobs-{}", std::process::id()).parse()?;
    let store = JobStore::open_with(&locator, &s3_config(&endpoint, &key, &secret))?;
    conformance(&store, true)?;
    tampered_url_is_refused(&store)
}

/// A small create through a proxy that logs requests: one `HEAD` (nothing there yet) and one `PUT`
/// of the object, which carries its hash; an identical re-create is the `HEAD` alone; a direct
/// fetch is one `GET`, no `HEAD`.
#[test]
fn a_small_create_on_s3s_fs_is_one_put_and_an_identical_one_uploads_nothing() -> TestResult {
    let endpoint = required("RESOURCE_TEST_S3S_ENDPOINT")?;
    let key = required("RESOURCE_TEST_S3S_ACCESS_KEY")?;
    let secret = required("RESOURCE_TEST_S3S_SECRET_KEY")?;
    let bucket = required("RESOURCE_TEST_S3S_BUCKET")?;
    let upstream: std::net::SocketAddr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    let proxy = DelayProxy::start(upstream, ProxyOptions::default())?;
    let locator: StoreLocator = format!("s3://{bucket}/small-{}", std::process::id()).parse()?;
    let store = JobStore::open_with(&locator, &s3_config(&proxy.endpoint(), &key, &secret))?;
    // A runtime that keeps running between calls: the store's pooled connections live on it, and
    // the direct fetch below reuses them from the source's own runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let inputs = inputs()?;
    let small = inputs._dir.path().join("small.bin");
    std::fs::write(&small, noise(64 << 10, 12))?;
    for path in [&small, &inputs.package] {
        let label = path.display().to_string();
        let methods = |from: usize| -> Result<Vec<String>, Box<dyn std::error::Error>> {
            Ok(proxy.requests()?[from..]
                .iter()
                .map(|request| request.method.clone())
                .collect())
        };
        let before = proxy.requests()?.len();
        let published = runtime.block_on(publish(&store, path, &PublishOptions::default()))?;
        assert!(published.uploaded, "{label}");
        assert_eq!(methods(before)?, ["HEAD", "PUT"], "{label}: create");
        let put = &proxy.requests()?[before + 1];
        assert_eq!(put.query, None, "{label}: a plain PUT, not a part");
        assert_eq!(put.body_len, published.stored_bytes, "{label}");

        let before = proxy.requests()?.len();
        let again = runtime.block_on(publish(&store, path, &PublishOptions::default()))?;
        assert!(
            !again.uploaded,
            "{label}: an identical re-create uploads nothing"
        );
        assert_eq!(methods(before)?, ["HEAD"], "{label}: re-create");

        let resource = published.resource;
        let before = proxy.requests()?.len();
        let root = tempfile::tempdir()?;
        let source = store.source(resource.path_hash.as_ref())?;
        let installed = install(&resource, root.path(), source, None, &quick_install())?;
        if path == &small {
            assert_eq!(std::fs::read(&installed.path)?, std::fs::read(&small)?);
        } else {
            check_installed(&resource, &installed.path, &inputs)?;
        }
        let fetched = methods(before)?;
        assert!(
            fetched.first().map(String::as_str) == Some("GET") && !fetched.contains(&"HEAD".into()),
            "{label}: a direct fetch starts with its GET and sends no HEAD: {fetched:?}"
        );
    }
    Ok(())
}

/// A presigned URL whose signature was changed is refused with 403, the error tells the user to
/// refresh, and nothing is installed. Only a server that checks signatures can tell.
fn tampered_url_is_refused(store: &JobStore) -> TestResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("signed.bin");
    std::fs::write(&file, noise(100_000, 11))?;
    let mut resource = runtime
        .block_on(publish(store, &file, &PublishOptions::default()))?
        .resource;

    // The untouched URL works, so the refusal below is the signature's doing.
    let root = tempfile::tempdir()?;
    let source = open_url(&resource.url, &StoreConfig::default())?;
    install(&resource, root.path(), source, None, &quick_install())?;

    let marker = "X-Amz-Signature=";
    let at = resource
        .url
        .find(marker)
        .ok_or_else(|| format!("no signature in {}", resource.url))?
        + marker.len();
    let original = resource.url[at..]
        .chars()
        .next()
        .ok_or("an empty signature")?;
    let replacement = if original == '0' { "1" } else { "0" };
    resource.url.replace_range(at..at + 1, replacement);

    let root = tempfile::tempdir()?;
    let source = open_url(&resource.url, &StoreConfig::default())?;
    match install(&resource, root.path(), source, None, &quick_install()) {
        Err(error @ StoreError::HttpStatus { status: 403, .. }) => {
            let message = error.to_string();
            assert!(message.contains("resource refresh"), "{message}");
            let signature = resource.url[at..].split('&').next().unwrap_or_default();
            assert!(
                !message.contains(signature),
                "the message shows the signature: {message}"
            );
        }
        other => return Err(format!("a tampered URL gave {other:?}, not HTTP 403").into()),
    }
    assert!(!resource.local_path(root.path()).exists());
    assert!(
        !resource.local_dir_path(root.path()).exists(),
        "a refused fetch left an entry"
    );
    Ok(())
}

#[test]
fn azure_store_conforms_on_azurite() -> TestResult {
    let endpoint = required("RESOURCE_TEST_AZURITE_ENDPOINT")?;
    let account = required("RESOURCE_TEST_AZURITE_ACCOUNT")?;
    let key = required("RESOURCE_TEST_AZURITE_KEY")?;
    let container = required("RESOURCE_TEST_AZURITE_CONTAINER")?;
    let locator: StoreLocator = format!("az://{container}/jobs-{}", std::process::id()).parse()?;
    let config = StoreConfig {
        settings: vec![
            ("AZURE_STORAGE_ACCOUNT_NAME".into(), account),
            ("AZURE_STORAGE_ACCOUNT_KEY".into(), key),
        ],
        endpoint: Some(endpoint),
        ..StoreConfig::default()
    };
    let store = JobStore::open_with(&locator, &config)?;
    // The URL handed to workers is a SAS URL signed with the account key.
    let url = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(store.url_for("probe"))?;
    assert!(url.contains("sig="), "not a SAS URL: {url}");
    conformance(&store, true)
}

/// A GCS client for the server at `endpoint`, signing with the service-account JSON at
/// `service_account` (a real RSA key: tokens and signed URLs are made locally).
fn gcs_config(endpoint: &str, service_account: &str) -> StoreConfig {
    StoreConfig {
        settings: vec![("GOOGLE_SERVICE_ACCOUNT".into(), service_account.into())],
        endpoint: Some(endpoint.to_owned()),
        ..StoreConfig::default()
    }
}

/// GCS on fake-gcs-server, the emulator that Toil's own GCS client also talks to: writes through
/// the JSON API (one request for a small object, a resumable session for a large one), reads
/// through `object_store`'s XML client, URLs signed locally with the service-account key.
#[test]
fn gcs_store_conforms_on_fake_gcs() -> TestResult {
    let endpoint = required("RESOURCE_TEST_GCS_READ_ENDPOINT")?;
    let service_account = required("RESOURCE_TEST_GCS_SERVICE_ACCOUNT")?;
    let bucket = create_fake_gcs_bucket(&endpoint, "conformance")?;
    let locator: StoreLocator = format!("gs://{bucket}/jobs").parse()?;
    let config = gcs_config(&endpoint, &service_account);
    let store = JobStore::open_with(&locator, &config)?;
    conformance(&store, true)?;

    // The URL handed to workers is signed, and a direct gs:// URL is read by a worker with the
    // same configuration.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let inputs = inputs()?;
    let direct = JobStore::open_with(
        &locator,
        &StoreConfig {
            direct_urls: true,
            ..config.clone()
        },
    )?;
    let resource = runtime
        .block_on(publish(
            &direct,
            &inputs.package,
            &PublishOptions::default(),
        ))?
        .resource;
    let name = resource.path_hash.to_string();
    let signed = runtime.block_on(store.url_for(&name))?;
    assert!(
        signed.contains("X-Goog-Signature="),
        "not a signed URL: {signed}"
    );
    assert_eq!(
        resource.url,
        format!("gs://{bucket}/{}", store.shared_object(&name))
    );
    install_and_check(&resource, open_url(&resource.url, &config)?, &inputs)
}

/// The JSON API's description of object `name` of `bucket` on fake-gcs-server.
fn fake_gcs_object(
    endpoint: &str,
    bucket: &str,
    name: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut response = ureq::get(&format!(
        "{endpoint}/storage/v1/b/{bucket}/o/{}",
        name.replace('/', "%2F")
    ))
    .call()?;
    Ok(serde_json::from_str(
        &response.body_mut().read_to_string()?,
    )?)
}

/// GCS objects written through the JSON API, as fake-gcs-server describes them: a small one
/// carries its hash in its metadata (so an identical re-create writes nothing: its generation
/// stays), a large one has a record file beside it, and a leader that fails mid-way leaves
/// nothing.
///
/// Not through a counting proxy: fake-gcs-server serves XML API reads only to requests whose
/// `Host` is its public host, which a proxy's is not.
#[test]
fn gcs_objects_carry_their_hash_and_a_failed_upload_leaves_nothing() -> TestResult {
    let endpoint = required("RESOURCE_TEST_GCS_READ_ENDPOINT")?;
    let service_account = required("RESOURCE_TEST_GCS_SERVICE_ACCOUNT")?;
    let bucket = create_fake_gcs_bucket(&endpoint, "metadata")?;
    let locator: StoreLocator = format!("gs://{bucket}/jobs").parse()?;
    let store = JobStore::open_with(&locator, &gcs_config(&endpoint, &service_account))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let inputs = inputs()?;
    let small = inputs._dir.path().join("small.bin");
    std::fs::write(&small, noise(64 << 10, 12))?;
    let published = runtime.block_on(publish(&store, &small, &PublishOptions::default()))?;
    let name = published.resource.path_hash.to_string();
    let object = store.shared_object(&name);
    let described = fake_gcs_object(&endpoint, &bucket, object.as_ref())?;
    assert_eq!(
        described["metadata"]["resourcecontenthash"],
        published.resource.content_hash.to_string(),
        "{described}"
    );
    assert_eq!(described["metadata"]["resourcekind"], "file", "{described}");
    let record = store.shared_object(&format!("{name}.resource.json"));
    let head = runtime.block_on(store.objects().head(&record));
    assert!(
        matches!(head, Err(object_store::Error::NotFound { .. })),
        "a small object needs no record file: {head:?}"
    );
    let again = runtime.block_on(publish(&store, &small, &PublishOptions::default()))?;
    assert!(!again.uploaded, "an identical re-create uploads nothing");
    let after = fake_gcs_object(&endpoint, &bucket, object.as_ref())?;
    assert_eq!(after["generation"], described["generation"]);

    // 12 MiB: a resumable session of two chunks, and a record file.
    let uploaded = runtime.block_on(store.upload("large", ResourceKind::File, |out| {
        out.write_all(&noise(12 << 20, 4))
            .map_err(|cause| StoreError::io("/leader/input", cause))
    }))?;
    assert_eq!(uploaded.size, 12 << 20);
    let stored = runtime.block_on(async {
        store
            .objects()
            .get(&store.shared_object("large"))
            .await?
            .bytes()
            .await
    })?;
    assert_eq!(stored.as_ref(), noise(12 << 20, 4).as_slice());
    let recorded = runtime.block_on(store.recorded("large"))?;
    assert_eq!(
        recorded.map(|record| record.content_hash),
        Some(uploaded.content_hash)
    );

    // A leader that fails after 11 MiB: its session is cancelled and nothing appears.
    failing_upload(&runtime, &store, "cancelled", ResourceKind::File)?;
    let head = runtime.block_on(store.objects().head(&store.shared_object("cancelled")));
    assert!(
        matches!(head, Err(object_store::Error::NotFound { .. })),
        "a cancelled upload left {head:?}"
    );
    Ok(())
}
