//! A fetch's first request gives the size and the first range: a small resource needs no other,
//! whatever the server; a server that ignores ranges sends one body, however large; a large
//! resource's first bytes come from that first request. Counted in requests and bytes.

use std::path::{Path, PathBuf};

use resource_core::Resource;
use resource_store::testing::{HttpFileServer, noise, visible_entries};
use resource_store::{
    FetchPolicy, InstallOptions, JobStore, PublishOptions, RangeChoice, StoreLocator, install,
    open_url, publish,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Bytes per range (and asked for by the first request) for the "large" resources here: they
/// span several ranges without being large.
const SMALL_RANGE: u64 = 256 << 10;

struct Fixture {
    _scratch: tempfile::TempDir,
    leader: PathBuf,
    server: HttpFileServer,
    /// A package of about 70 KB, as most shipped resources are.
    package: Resource,
    /// A 3 MiB directory and a 3 MiB file.
    large_dir: Resource,
    large_file: Resource,
}

fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let leader = scratch.path().join("leader");
    std::fs::create_dir_all(leader.join("package/sub"))?;
    std::fs::write(
        leader.join("package/__init__.py"),
        "from .sub import data\n",
    )?;
    std::fs::write(leader.join("package/sub/__init__.py"), "data = 1\n")?;
    std::fs::write(leader.join("package/sub/table.bin"), noise(64 << 10, 7))?;
    std::fs::create_dir_all(leader.join("tree/sub"))?;
    std::fs::write(leader.join("tree/a.bin"), noise(2 << 20, 2))?;
    std::fs::write(leader.join("tree/sub/b.bin"), noise(1 << 20, 3))?;
    std::fs::write(leader.join("blob.bin"), noise(3 << 20, 1))?;
    let store_dir = scratch.path().join("store");
    let store = JobStore::open(&StoreLocator::directory(&store_dir)?)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let options = PublishOptions::default();
    let publish_one = |name: &str| -> Result<Resource, Box<dyn std::error::Error>> {
        Ok(runtime
            .block_on(publish(&store, &leader.join(name), &options))?
            .resource)
    };
    let package = publish_one("package")?;
    let large_dir = publish_one("tree")?;
    let large_file = publish_one("blob.bin")?;
    let server = HttpFileServer::serve(&store_dir.join("shared"))?;
    Ok(Fixture {
        _scratch: scratch,
        leader,
        server,
        package,
        large_dir,
        large_file,
    })
}

/// Options with ranges of [`SMALL_RANGE`], chosen as `choice` says (never timed).
fn small_ranges(choice: RangeChoice) -> InstallOptions {
    InstallOptions {
        fetch: FetchPolicy {
            range_len: SMALL_RANGE,
            first_request_len: SMALL_RANGE,
            range_choice: choice,
            parallel_ranges: 4,
            ..FetchPolicy::default()
        },
        ..InstallOptions::default()
    }
}

/// The stored size of `resource`.
fn stored_len(resource: &Resource) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(open_url(&resource.url, &Default::default())?.len()?)
}

/// Installs `resource` from the fixture's web server into a fresh root, checks the content
/// against the leader's, and returns the requests and bytes that took.
fn fetch_over_http(
    fixture: &Fixture,
    resource: &Resource,
    options: &InstallOptions,
) -> Result<(u32, u64), Box<dyn std::error::Error>> {
    let name = resource.path_hash.to_string();
    let over_http = Resource {
        url: fixture.server.url(&name),
        ..resource.clone()
    };
    let before = fixture.server.counts(&name);
    let root = tempfile::tempdir()?;
    let installed = install(
        &over_http,
        root.path(),
        open_url(&over_http.url, &Default::default())?,
        None,
        options,
    )?;
    assert!(installed.downloaded);
    let original = fixture.leader.join(&resource.name);
    // A package is installed under its own name, so that it imports.
    let installed_tree = if original.join("__init__.py").exists() {
        installed.path.join(&resource.name)
    } else {
        installed.path.clone()
    };
    assert!(
        same_content(&original, &installed_tree)?,
        "{}: content differs",
        resource.name
    );
    // Nothing beside the entry: no spooled copy, no temporary directory.
    assert_eq!(
        visible_entries(root.path()),
        [resource.content_hash.to_string()]
    );
    let after = fixture.server.counts(&name);
    Ok((
        after.requests - before.requests,
        after.bytes_sent - before.bytes_sent,
    ))
}

fn same_content(original: &Path, installed: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    if original.is_file() {
        let installed_bytes = std::fs::read(installed)
            .map_err(|error| format!("{}: {error}", installed.display()))?;
        return Ok(std::fs::read(original)? == installed_bytes);
    }
    for entry in std::fs::read_dir(original)? {
        let entry = entry?;
        if !same_content(&entry.path(), &installed.join(entry.file_name()))? {
            return Ok(false);
        }
    }
    Ok(std::fs::read_dir(original)?.count() == std::fs::read_dir(installed)?.count())
}

#[test]
fn a_small_directory_resource_is_fetched_with_one_request() -> TestResult {
    let fixture = fixture()?;
    let len = stored_len(&fixture.package)?;
    let name = fixture.package.path_hash.to_string();
    for ignore_ranges in [false, true] {
        fixture.server.ignore_ranges(ignore_ranges);
        let (requests, bytes) =
            fetch_over_http(&fixture, &fixture.package, &InstallOptions::default())?;
        let label = format!("ignoring ranges: {ignore_ranges}");
        assert_eq!(requests, 1, "{label}");
        assert_eq!(bytes, len, "{label}");
    }
    let first_request_len = FetchPolicy::default().first_request_len;
    assert_eq!(
        fixture.server.ranges_asked(&name),
        vec![Some(format!("bytes=0-{}", first_request_len - 1)); 2],
        "the first request asks for the first range, whatever the server does with it"
    );
    Ok(())
}

#[test]
fn a_server_that_ignores_ranges_sends_one_body_for_a_large_resource() -> TestResult {
    let fixture = fixture()?;
    fixture.server.ignore_ranges(true);
    for resource in [&fixture.large_dir, &fixture.large_file] {
        let len = stored_len(resource)?;
        assert!(len > 4 * SMALL_RANGE, "{len} bytes is not a large resource");
        for choice in [RangeChoice::Measure, RangeChoice::Ranges] {
            let (requests, bytes) = fetch_over_http(&fixture, resource, &small_ranges(choice))?;
            let label = format!("{} with {choice:?}", resource.name);
            assert_eq!(requests, 1, "{label}");
            assert_eq!(bytes, len, "{label}: one body");
        }
    }
    Ok(())
}

#[test]
fn a_large_resource_starts_with_its_first_range_and_asks_for_the_rest_beside_it() -> TestResult {
    let fixture = fixture()?;
    for resource in [&fixture.large_dir, &fixture.large_file] {
        let name = resource.path_hash.to_string();
        let len = stored_len(resource)?;
        let ranges = u32::try_from(len.div_ceil(SMALL_RANGE))?;
        // An archive's central directory is read from its tail, a file has none.
        let tail = u32::from(resource.name != "blob.bin");
        // (choice, requests): a request per range, or the first range and one stream.
        for (choice, expected) in [
            (RangeChoice::Ranges, ranges + tail),
            (RangeChoice::OneStream, 2 + tail),
        ] {
            let asked_before = fixture.server.ranges_asked(&name).len();
            let (requests, bytes) = fetch_over_http(&fixture, resource, &small_ranges(choice))?;
            let label = format!("{} with {choice:?}", resource.name);
            assert_eq!(requests, expected, "{label}");
            let asked = fixture.server.ranges_asked(&name);
            assert_eq!(
                asked.get(asked_before),
                Some(&Some(format!("bytes=0-{}", SMALL_RANGE - 1))),
                "{label}: the first request is the first range"
            );
            // Each byte is sent once, but for the tail, which is asked for beside the content.
            let tail_bytes = if tail == 1 {
                resource_archive::first_tail_len(len)
            } else {
                0
            };
            assert_eq!(bytes, len + tail_bytes, "{label}");
        }
    }
    Ok(())
}

#[test]
fn asking_ahead_adds_no_request_and_no_byte_and_bounds_the_connections() -> TestResult {
    let fixture = fixture()?;
    // Bodies about as slow as a first byte: each body asks for the next range before it ends.
    fixture
        .server
        .pace(std::time::Duration::from_millis(20), 16 << 20);
    let resource = &fixture.large_file;
    let len = stored_len(resource)?;
    let ranges = u32::try_from(len.div_ceil(SMALL_RANGE))?;
    for parallel_ranges in [2, 4] {
        let mut options = small_ranges(RangeChoice::Ranges);
        options.fetch.parallel_ranges = parallel_ranges;
        let (requests, bytes) = fetch_over_http(&fixture, resource, &options)?;
        let label = format!("{parallel_ranges} parallel ranges");
        // Asked early or late, each range is asked for once and each byte sent once.
        assert_eq!(requests, ranges, "{label}");
        assert_eq!(bytes, len, "{label}");
    }
    // Bodies stream about `parallel_ranges` at a time. The server counts connections: one per
    // range asked for and not yet read (at most twice the 4 parallel ranges, less the one the
    // reader holds) and the first request's, which may sit idle in the pool meanwhile.
    let most_open = fixture.server.most_open_at_once();
    assert!(
        (1..=8).contains(&most_open),
        "{most_open} connections open at once, more than 7 ranges pending and the first request's"
    );
    Ok(())
}
