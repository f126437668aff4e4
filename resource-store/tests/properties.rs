//! Cross-crate property tests: publish → wire form → registry → install, on a real directory store.

use std::collections::HashMap;
use std::path::Path;

use proptest::prelude::*;
use resource_core::registry;
use resource_store::{JobStore, PublishOptions, StoreLocator, install, open_url, publish};

/// File names a Linux filesystem accepts: any Unicode without `/` or NUL, not `.` or `..`,
/// at most 255 bytes.
fn file_name() -> impl Strategy<Value = String> {
    "[^/\u{0}]{1,40}".prop_filter("a real file name", |name| {
        name != "." && name != ".." && name.len() <= 255
    })
}

fn round_trip(name: &str, content: &[u8]) -> Result<(), TestCaseError> {
    let fail = |error: &dyn std::fmt::Display| TestCaseError::fail(error.to_string());
    let scratch = tempfile::tempdir().map_err(|e| fail(&e))?;
    let leader_path = scratch.path().join(name);
    std::fs::write(&leader_path, content).map_err(|e| fail(&e))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| fail(&e))?;
    let store = JobStore::open(
        &StoreLocator::directory(&scratch.path().join("store")).map_err(|e| fail(&e))?,
    )
    .map_err(|e| fail(&e))?;
    let published = runtime
        .block_on(publish(&store, &leader_path, &PublishOptions::default()))
        .map_err(|e| fail(&e))?;

    // Only the registry pair crosses to the worker.
    let vars: HashMap<String, String> = [registry::entry(&published.resource)].into();
    let resource = registry::lookup(&leader_path, |var| vars.get(var).cloned())
        .map_err(|e| fail(&e))?
        .ok_or_else(|| TestCaseError::fail("not registered"))?;
    prop_assert_eq!(&resource, &published.resource);
    prop_assert_eq!(resource.name.as_str(), name);

    let root = scratch.path().join("root");
    let source = open_url(&resource.url, &Default::default()).map_err(|e| fail(&e))?;
    let installed =
        install(&resource, &root, source, None, &Default::default()).map_err(|e| fail(&e))?;
    prop_assert!(installed.downloaded);
    let expected = root.join(resource.content_hash.as_str()).join(name);
    prop_assert_eq!(&installed.path, &expected);
    prop_assert_eq!(
        std::fs::read(&installed.path).map_err(|e| fail(&e))?,
        content
    );
    let visible = Path::new(&root)
        .read_dir()
        .map_err(|e| fail(&e))?
        .filter_map(Result::ok)
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .count();
    prop_assert_eq!(visible, 1, "one entry and no temporaries");
    Ok(())
}

proptest! {
    #[test]
    fn prop_file_resources_round_trip_through_store_registry_and_install(
        name in file_name(),
        content in proptest::collection::vec(any::<u8>(), 0..70_000),
    ) {
        round_trip(&name, &content)?;
    }
}
