//! Every injected fault is detected, transient ones are recovered, and nothing wrong is installed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use resource_core::Resource;
use resource_store::fault::{Fault, FaultySource};
use resource_store::source::http::HttpSource;
use resource_store::testing::{HttpFileServer, noise, visible_entries};
use resource_store::{
    ByteSource, FetchPolicy, InstallOptions, Installed, JobStore, PublishOptions, RangeChoice,
    StoreError, StoreLocator, install, open_url, publish,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Fixture {
    _scratch: tempfile::TempDir,
    leader: PathBuf,
    store_dir: PathBuf,
    file: Resource,
    dir: Resource,
}

fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let leader = scratch.path().join("leader");
    std::fs::create_dir_all(leader.join("tree/sub"))?;
    std::fs::write(leader.join("blob.bin"), noise(3 << 20, 1))?;
    std::fs::write(leader.join("tree/a.bin"), noise(2 << 20, 2))?;
    std::fs::write(leader.join("tree/sub/b.bin"), noise(1 << 20, 3))?;
    std::fs::write(leader.join("tree/small.py"), "x = 1\n")?;
    let store_dir = scratch.path().join("store");
    let store = JobStore::open(&StoreLocator::directory(&store_dir)?)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let options = PublishOptions::default();
    let file = runtime
        .block_on(publish(&store, &leader.join("blob.bin"), &options))?
        .resource;
    let dir = runtime
        .block_on(publish(&store, &leader.join("tree"), &options))?
        .resource;
    Ok(Fixture {
        _scratch: scratch,
        leader,
        store_dir,
        file,
        dir,
    })
}

fn quick_options() -> InstallOptions {
    InstallOptions {
        fetch: FetchPolicy {
            first_backoff: Duration::from_millis(1),
            stall_timeout: Duration::from_millis(300),
            ..FetchPolicy::default()
        },
        ..InstallOptions::default()
    }
}

/// The names in a directory, hidden cache folders aside.
fn same_tree(a: &Path, b: &Path) -> Result<bool, std::io::Error> {
    let mut left: Vec<_> = walk(a)?;
    let mut right: Vec<_> = walk(b)?;
    left.sort();
    right.sort();
    Ok(left == right)
}

/// Whether `installed` holds what `original` (a file or a directory) holds.
fn same_content(original: &Path, installed: &Path) -> Result<bool, std::io::Error> {
    if original.is_dir() {
        same_tree(original, installed)
    } else {
        Ok(std::fs::read(installed)? == std::fs::read(original)?)
    }
}

/// Installs `resource` under `root` from its URL.
fn install_from_url(
    resource: &Resource,
    root: &Path,
    options: &InstallOptions,
) -> Result<Installed, StoreError> {
    install(
        resource,
        root,
        open_url(&resource.url, &Default::default())?,
        None,
        options,
    )
}

fn walk(root: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, std::io::Error> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if path.is_dir() {
                pending.push(path);
                out.push((relative, Vec::new()));
            } else {
                out.push((relative, std::fs::read(&path)?));
            }
        }
    }
    Ok(out)
}

const FAULTS: [Fault; 5] = [
    Fault::Truncate { at: (1 << 20) + 7 },
    Fault::FlipByte { at: (2 << 20) + 3 },
    Fault::FailMidStream { at: (1 << 20) + 5 },
    Fault::Stall {
        at: 100,
        pause: Duration::from_millis(1500),
    },
    Fault::RefuseOpen,
];

/// Bytes per range when a check fetches parallel ranges: the fixture's files span several.
const TEST_RANGE_LEN: u64 = 256 << 10;

/// The first request's range in the fault checks: the first range reaches the reader in pieces
/// while it arrives, and the faults at 1 MiB fall in its middle, after some pieces went on.
const FAULT_FIRST_REQUEST_LEN: u64 = 2 << 20;

/// How a check's worker reaches the stored bytes.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// The local file, read as one stream.
    File,
    /// A web server, read as parallel ranges.
    HttpRanges,
}

/// Options for `route`, reading ranges as `choice` says.
fn options_for(route: Route, choice: RangeChoice) -> InstallOptions {
    let mut options = quick_options();
    if let Route::HttpRanges = route {
        options.fetch.parallel_ranges = 4;
        options.fetch.range_len = TEST_RANGE_LEN;
        options.fetch.first_request_len = TEST_RANGE_LEN;
        options.fetch.range_choice = choice;
    }
    options
}

fn check(
    fixture: &Fixture,
    server: &HttpFileServer,
    route: Route,
    resource: &Resource,
    fault: Fault,
    transient: bool,
) -> TestResult {
    let root = tempfile::tempdir()?;
    let name = resource.path_hash.to_string();
    let url = match route {
        Route::File => resource.url.clone(),
        Route::HttpRanges => server.url(&name),
    };
    let requests_before = server.counts(&name);
    let faulty = Arc::new(FaultySource::new(
        open_url(&url, &Default::default())?,
        fault,
        if transient { 1 } else { u32::MAX },
    ));
    let source: Arc<dyn ByteSource> = faulty.clone();
    // Ranges are chosen, not measured: on a loaded machine the measured choice could flip, and
    // this test is about faults (the measured choice has a test of its own below).
    let mut options = options_for(route, RangeChoice::Ranges);
    options.fetch.first_request_len = FAULT_FIRST_REQUEST_LEN;
    let result = install(resource, root.path(), source, None, &options);
    let label = format!(
        "{fault:?} on {} over {route:?} ({})",
        resource.kind,
        if transient { "transient" } else { "permanent" }
    );
    // A fault that never goes away may stop the fetch before its ranges are asked for.
    if let (Route::HttpRanges, true) = (route, transient) {
        let counts = server.counts(&name);
        let ranges = fixture_ranges(resource, FAULT_FIRST_REQUEST_LEN)?;
        assert!(
            counts.requests - requests_before.requests >= ranges,
            "{label}: {} requests for {ranges} ranges are not parallel ranges",
            counts.requests - requests_before.requests
        );
    }
    if transient {
        let installed = result.map_err(|error| format!("{label}: {error}"))?;
        assert!(faulty.faults() >= 1, "{label}: the fault was never hit");
        let original = fixture.leader.join(&resource.name);
        assert!(
            same_content(&original, &installed.path)?,
            "{label}: content differs"
        );
        assert_eq!(
            visible_entries(root.path()),
            [resource.content_hash.to_string()],
            "{label}"
        );
    } else {
        let error = result
            .err()
            .ok_or_else(|| format!("{label}: a permanent fault went unnoticed"))?;
        assert!(
            visible_entries(root.path()).is_empty(),
            "{label}: left behind {:?} after {error}",
            visible_entries(root.path())
        );
    }
    Ok(())
}

/// How many ranges the stored bytes of `resource` span: a first one of `first_len`, then ranges of
/// [`TEST_RANGE_LEN`].
fn fixture_ranges(resource: &Resource, first_len: u64) -> Result<u32, Box<dyn std::error::Error>> {
    let len = open_url(&resource.url, &Default::default())?.len()?;
    let rest = len.saturating_sub(first_len).div_ceil(TEST_RANGE_LEN);
    Ok(u32::try_from(1 + rest)?)
}

/// A body pace at which a range of [`TEST_RANGE_LEN`] takes 4 ms on the wire: far longer than a
/// request's own cost on 127.0.0.1, so that parallel ranges pay.
const SLOW_BODY: u64 = 64 << 20;

/// A body pace at which a range of [`TEST_RANGE_LEN`] takes 32 ms on the wire, for the check of
/// the timed choice between ranges and one stream.
const MEASURED_BODY: u64 = 8 << 20;

/// The first request's range in the check of the timed choice: 4 pieces.
const MEASURED_FIRST_REQUEST_LEN: u64 = 1 << 20;

/// A body pace at which a range of [`TEST_RANGE_LEN`] takes 128 ms on the wire: against a free
/// request, the timed choice must pick ranges however late a loaded machine reads.
const FREE_REQUEST_BODY: u64 = 2 << 20;

#[test]
fn every_fault_is_detected_and_transient_ones_are_recovered() -> TestResult {
    let fixture = fixture()?;
    let server = HttpFileServer::serve(&fixture.store_dir.join("shared"))?;
    server.pace(Duration::ZERO, SLOW_BODY);
    for route in [Route::File, Route::HttpRanges] {
        for resource in [&fixture.file, &fixture.dir] {
            for fault in FAULTS {
                check(&fixture, &server, route, resource, fault, true)?;
                check(&fixture, &server, route, resource, fault, false)?;
            }
        }
    }
    Ok(())
}

#[test]
fn http_downloads_retry_busy_servers_and_fail_fast_on_missing_objects() -> TestResult {
    let fixture = fixture()?;
    let server = HttpFileServer::serve(&fixture.store_dir.join("shared"))?;
    for resource in [&fixture.file, &fixture.dir] {
        let name = resource.path_hash.to_string();
        let over_http = Resource {
            url: server.url(&name),
            ..resource.clone()
        };
        let root = tempfile::tempdir()?;
        server.fail_next(2, 503);
        let installed = install_from_url(&over_http, root.path(), &quick_options())?;
        assert!(installed.downloaded);
        let len = open_url(&resource.url, &Default::default())?.len()?;
        assert_eq!(
            server.counts(&name).whole_copies(len),
            1,
            "{:?}",
            server.counts(&name)
        );

        let missing = Resource {
            url: server.url("no-such-object"),
            ..resource.clone()
        };
        let other_root = tempfile::tempdir()?;
        let error = install_from_url(&missing, other_root.path(), &quick_options())
            .err()
            .ok_or("a missing object must fail")?;
        assert!(
            matches!(error, StoreError::HttpStatus { status: 404, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("create it again"), "{error}");
        assert!(visible_entries(other_root.path()).is_empty());
    }
    Ok(())
}

/// A small download over HTTP is read on the calling thread, with no thread to watch it (see
/// the unit test beside `fetch_stream`): the socket's read timeout notices a stalled body instead. A stall once is resumed with one more
/// request and installs the right bytes; a server that always stalls fails with the stall named,
/// and leaves nothing behind.
#[test]
fn a_small_http_download_notices_a_stalled_body_by_its_read_timeout() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let tree = scratch.path().join("small");
    std::fs::create_dir_all(&tree)?;
    std::fs::write(tree.join("data.bin"), noise(64 << 10, 7))?;
    let store_dir = scratch.path().join("store");
    let store = JobStore::open(&StoreLocator::directory(&store_dir)?)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let resource = runtime
        .block_on(publish(&store, &tree, &PublishOptions::default()))?
        .resource;
    let server = HttpFileServer::serve(&store_dir.join("shared"))?;
    let name = resource.path_hash.to_string();
    let stall = Duration::from_millis(300);
    let mut options = quick_options();
    options.fetch.stall_timeout = stall;
    options.fetch.attempts = 2;
    options.fetch.resumes_per_attempt = 1;
    let fetch = |root: &Path| {
        let source = Arc::new(HttpSource::with_read_timeout(&server.url(&name), stall));
        install(&resource, root, source, None, &options)
    };

    // Stopping far longer than the stall timeout, once, a few bytes into the body.
    server.stall_next(1, 100, Duration::from_secs(5));
    let root = tempfile::tempdir()?;
    let installed = fetch(root.path())?;
    assert!(same_tree(&tree, &installed.path)?);
    // Had the stall been waited out, the first request would have been the only one.
    assert_eq!(
        server.counts(&name).requests,
        2,
        "the first request and one resume"
    );

    server.stall_next(u32::MAX, 100, Duration::from_secs(5));
    let other_root = tempfile::tempdir()?;
    let error = fetch(other_root.path())
        .err()
        .ok_or("a server that always stalls must fail")?;
    let stalled = match &error {
        StoreError::GaveUp { last, .. } => {
            matches!(**last, StoreError::Stalled { waited, .. } if waited == stall)
        }
        _ => false,
    };
    assert!(stalled, "the stall should be the cause: {error:?}");
    assert!(
        visible_entries(other_root.path()).is_empty(),
        "left behind {:?}",
        visible_entries(other_root.path())
    );
    Ok(())
}

/// Parallel ranges where they pay, one stream where every request costs more than ranges save:
/// counted in requests, with the same bytes installed either way.
#[test]
fn ranges_are_fetched_in_parallel_only_where_they_pay() -> TestResult {
    let fixture = fixture()?;
    let server = HttpFileServer::serve(&fixture.store_dir.join("shared"))?;
    // (first-byte delay, body pace, whether ranges pay): 128 ms bodies against a free request,
    // then 32 ms bodies against a request that costs a second, far more than the 3 × 32 ms that
    // four ranges at once save. The margins are wide both ways because the choice is timed: a
    // loaded 2-core machine can spend tens of milliseconds before a free request's first byte,
    // and a reader that wakes late sees the bytes that waited for it as a burst, which makes a
    // short body look shorter still.
    for (first_byte_delay, body_pace, ranges_pay) in [
        (Duration::ZERO, FREE_REQUEST_BODY, true),
        (Duration::from_secs(1), MEASURED_BODY, false),
    ] {
        server.pace(first_byte_delay, body_pace);
        for resource in [&fixture.file, &fixture.dir] {
            let name = resource.path_hash.to_string();
            let over_http = Resource {
                url: server.url(&name),
                ..resource.clone()
            };
            let before = server.counts(&name).requests;
            let root = tempfile::tempdir()?;
            let mut options = options_for(Route::HttpRanges, RangeChoice::Measure);
            // A first range of several pieces: taking its pieces asks for nothing more.
            options.fetch.first_request_len = MEASURED_FIRST_REQUEST_LEN;
            // A second before the first byte is slow, not stalled.
            options.fetch.stall_timeout = Duration::from_secs(10);
            let installed = install_from_url(&over_http, root.path(), &options)?;
            let label = format!(
                "{} with first bytes after {first_byte_delay:?}",
                resource.kind
            );
            let original = fixture.leader.join(&resource.name);
            assert!(
                same_content(&original, &installed.path)?,
                "{label}: content differs"
            );
            // The archive's tail for a directory, beside the content.
            let tail = u32::from(original.is_dir());
            let requests = server.counts(&name).requests - before;
            // The first range gives the size. Where ranges pay, one request per range follows.
            // Where a request waits a second for its answer, ranges could pay only on a slow
            // link, so none is asked for before the body's pace is timed, and the rest then
            // comes as one stream: no request that is not needed.
            let expected = if ranges_pay {
                tail + fixture_ranges(resource, MEASURED_FIRST_REQUEST_LEN)?
            } else {
                tail + 1 + 1
            };
            assert_eq!(requests, expected, "{label}");
        }
    }
    Ok(())
}
