//! The job store's upload: atomic, streaming, and clean on failure.

use std::io::Write;

use resource_core::{ContentHash, ResourceKind};
use resource_store::{JobStore, StoreError, StoreLocator};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn directory_store(dir: &std::path::Path) -> Result<JobStore, StoreError> {
    JobStore::open(&StoreLocator::directory(dir)?)
}

fn shared_entries(dir: &std::path::Path) -> Result<Vec<String>, std::io::Error> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("shared"))?
        .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_producer_leaves_nothing_under_the_name() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let store = directory_store(scratch.path())?;
    // More than two multipart parts are written before the failure.
    let result = store
        .upload("victim", ResourceKind::File, |out: &mut dyn Write| {
            out.write_all(&vec![1u8; 12 << 20])
                .map_err(|cause| StoreError::io("/leader/file", cause))?;
            Err::<(), _>(StoreError::io(
                "/leader/file",
                std::io::Error::other("disk vanished"),
            ))
        })
        .await;
    let error = result.err().ok_or("the upload should fail")?;
    // The message names the path; its cause, the source, says why.
    assert_eq!(error.to_string(), "/leader/file");
    let cause = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(cause.as_deref(), Some("disk vanished"), "{error:?}");
    assert_eq!(shared_entries(scratch.path())?, Vec::<String>::new());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_replacement_keeps_the_previous_object_and_record() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let store = directory_store(scratch.path())?;
    let first = store
        .upload("name", ResourceKind::File, |out: &mut dyn Write| {
            out.write_all(b"version one")
                .map_err(|cause| StoreError::io("/x", cause))
        })
        .await?;
    assert_eq!(first.content_hash, ContentHash::of_bytes(b"version one"));
    let failed = store
        .upload("name", ResourceKind::File, |out: &mut dyn Write| {
            out.write_all(b"version tw")
                .map_err(|cause| StoreError::io("/x", cause))?;
            Err::<(), _>(StoreError::io("/x", std::io::Error::other("interrupted")))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(
        std::fs::read(scratch.path().join("shared/name"))?,
        b"version one"
    );
    let record = store.recorded("name").await?.ok_or("record lost")?;
    assert_eq!(record.content_hash, first.content_hash);
    assert_eq!(
        shared_entries(scratch.path())?,
        ["name", "name.resource.json"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_no_longer_matching_its_object_is_ignored() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let store = directory_store(scratch.path())?;
    store
        .upload("name", ResourceKind::File, |out: &mut dyn Write| {
            out.write_all(b"ours")
                .map_err(|cause| StoreError::io("/x", cause))
        })
        .await?;
    assert!(store.recorded("name").await?.is_some());
    // Something else (Toil itself, say) replaces the object atomically.
    std::fs::write(scratch.path().join("shared/tmp"), b"theirs")?;
    std::fs::rename(
        scratch.path().join("shared/tmp"),
        scratch.path().join("shared/name"),
    )?;
    assert_eq!(store.recorded("name").await?, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_initialised_by_toil_gets_its_shared_layout() -> TestResult {
    let scratch = tempfile::tempdir()?;
    std::fs::create_dir_all(scratch.path().join("files/shared"))?;
    let store = directory_store(scratch.path())?;
    store
        .upload("abc", ResourceKind::File, |out: &mut dyn Write| {
            out.write_all(b"x")
                .map_err(|cause| StoreError::io("/x", cause))
        })
        .await?;
    assert!(scratch.path().join("files/shared/abc").is_file());
    assert_eq!(
        store.url_for("abc").await?,
        format!("file:{}", scratch.path().join("files/shared/abc").display())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_streams_and_records_too() -> TestResult {
    let store = JobStore::open(&"memory://".parse()?)?;
    let uploaded = store
        .upload("big", ResourceKind::File, |out: &mut dyn Write| {
            for _ in 0..16 {
                out.write_all(&[9u8; 1 << 20])
                    .map_err(|cause| StoreError::io("/x", cause))?;
            }
            Ok(())
        })
        .await?;
    assert_eq!(uploaded.size, 16 << 20);
    assert_eq!(
        uploaded.content_hash,
        ContentHash::of_bytes(&vec![9u8; 16 << 20])
    );
    let record = store.recorded("big").await?.ok_or("no record")?;
    assert_eq!(record.size, 16 << 20);
    Ok(())
}
