//! The native half of the `resource_rs` Python package: Toil's `toil.resource` API in-process.
//!
//! The Python half (`python/resource_rs`) holds the classes with Toil's names (namedtuples, as
//! Toil's are) and what must read or set the interpreter's own state (`os.environ`,
//! `sys.modules`, `sys.path`). Everything else is done here by the workspace crates: packing,
//! hashing, storing, fetching, verifying and installing, the wire form, and the shipping rules
//! of module descriptors. Calls that touch the disk or the network release the GIL.
//!
//! ```python
//! import resource_rs
//! resource = resource_rs.Resource.create("/tmp/jobstore", "/home/me/flow.py")
//! resource.register()
//! ```

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock, PoisonError};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use resource_archive::PackOptions;
use resource_core::report::error_chain;
use resource_core::{ContentHash, ModuleDescriptor, PathHash, Resource, ResourceKind, wire};
use resource_modules::discover::{Shipping, ship_plan as plan_shipping};
use resource_store::source::file::LocalFileSource;
use resource_store::{
    InstallOptions, JobStore, PublishOptions, StoreConfig, StoreError, StoreLocator,
};

create_exception!(
    _native,
    ResourceException,
    PyException,
    "A resource or module descriptor cannot be made, stored or used (Toil's ResourceException)."
);

/// How much of a resource is buffered before it is handed to a Python job store's stream: the
/// bound on the leader's memory for such stores. Resources smaller than this reach the stream
/// in one `write`, as Toil's do.
const PYTHON_WRITE_CHUNK: usize = 32 << 20;

/// The tokio runtime of the process, started on first use.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("resource-rs")
        .enable_all()
        .build()
        .map_err(|error| PyOSError::new_err(format!("cannot start the async runtime: {error}")))?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// The Python exception for a store error: the types Toil raises for the same failures, with
/// our message.
fn store_error(error: StoreError) -> PyErr {
    let message = error_chain(&error);
    match &error {
        StoreError::Missing { .. } => PyFileNotFoundError::new_err(message),
        StoreError::Io { cause, .. } => match cause.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, message)),
            None => PyOSError::new_err(message),
        },
        // Toil raises RuntimeError("The Resource's contents is incorrect.").
        StoreError::ContentMismatch { .. } => PyRuntimeError::new_err(message),
        StoreError::HttpStatus { status, .. } => http_error(*status, message),
        _ => ResourceException::new_err(message),
    }
}

/// `urllib.error.HTTPError`, which Toil's `urlopen` raises for an HTTP status.
fn http_error(status: u16, message: String) -> PyErr {
    Python::attach(|py| {
        let made = py.import("urllib.error").and_then(|module| {
            module.getattr("HTTPError")?.call1((
                message.clone(),
                status,
                message.clone(),
                py.None(),
                py.None(),
            ))
        });
        match made {
            Ok(error) => PyErr::from_value(error),
            Err(error) => error,
        }
    })
}

fn kind_of(class_name: &str) -> PyResult<ResourceKind> {
    ResourceKind::ALL
        .into_iter()
        .find(|kind| kind.toil_class().rsplit('.').next() == Some(class_name))
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "{class_name:?} is not a resource class; expected FileResource, \
                 DirectoryResource or VirtualEnvResource"
            ))
        })
}

fn class_of(kind: ResourceKind) -> &'static str {
    let class = kind.toil_class();
    class.rsplit('.').next().unwrap_or(class)
}

/// A resource's fields as the Python side holds them: (class name, name, pathHash, url,
/// contentHash).
type Fields = (String, String, String, String, String);

fn fields(resource: &Resource) -> Fields {
    (
        class_of(resource.kind).to_owned(),
        resource.name.clone(),
        resource.path_hash.to_string(),
        resource.url.clone(),
        resource.content_hash.to_string(),
    )
}

fn resource_from(
    class_name: &str,
    name: String,
    path_hash: String,
    url: String,
    content_hash: String,
) -> PyResult<Resource> {
    let bad_hash = |field: &str, error: resource_core::HashParseError| {
        PyValueError::new_err(format!("the resource's {field} is malformed: {error}"))
    };
    Ok(Resource {
        kind: kind_of(class_name)?,
        name,
        path_hash: PathHash::try_from(path_hash).map_err(|error| bad_hash("pathHash", error))?,
        url,
        content_hash: ContentHash::try_from(content_hash)
            .map_err(|error| bad_hash("contentHash", error))?,
    })
}

fn pack_options(home: Option<PathBuf>) -> PackOptions {
    PackOptions {
        home_dir: home,
        ..PackOptions::default()
    }
}

fn requested_kind(class_name: Option<&str>) -> PyResult<Option<ResourceKind>> {
    class_name.map(kind_of).transpose()
}

/// The MD5 of a leader path exactly as given, Toil's `pathHash`.
#[pyfunction]
fn path_hash(path: &str) -> String {
    PathHash::of_bytes(path.as_bytes()).to_string()
}

/// Toil's wire form of a resource: `toil.resource.<Class>:<json.dumps of the four fields>`.
#[pyfunction]
fn encode_wire(
    class_name: &str,
    name: String,
    path_hash: String,
    url: String,
    content_hash: String,
) -> PyResult<String> {
    Ok(wire::encode(&resource_from(
        class_name,
        name,
        path_hash,
        url,
        content_hash,
    )?))
}

/// The fields of a resource in Toil's wire form; `ValueError` when it is not one.
#[pyfunction]
fn decode_wire(value: &str) -> PyResult<Fields> {
    wire::decode(value)
        .map(|resource| fields(&resource))
        .map_err(|error| PyValueError::new_err(error_chain(&error)))
}

/// Publishes `leader_path` into the job store at `locator` (one of our locators, or a Toil file
/// job store's directory); returns the resource's fields. `class_name` forces the kind; `env`
/// is the process environment, read for credentials and `HOME`; `endpoint` is the service the
/// store's client talks to when it is not the provider's own (the endpoint of a Toil AWS job
/// store's boto3 client, say, so that we write where that job store reads). `direct_url` hands
/// back a direct `s3://` or `gs://` URL instead of signing one: a caller that names the resource
/// by its job store's own URL needs none, and signing can need a service of its own (a GCS
/// client given only a bearer token signs through Google's IAM API).
#[pyfunction]
#[pyo3(signature = (locator, leader_path, class_name=None, env=Vec::new(), endpoint=None, direct_url=false))]
fn publish(
    py: Python<'_>,
    locator: &str,
    leader_path: PathBuf,
    class_name: Option<&str>,
    env: Vec<(String, String)>,
    endpoint: Option<String>,
    direct_url: bool,
) -> PyResult<Fields> {
    let kind = requested_kind(class_name)?;
    let locator = StoreLocator::from_str(locator).map_err(store_error)?;
    let home = env
        .iter()
        .find(|(name, _)| name == "HOME")
        .map(|(_, value)| PathBuf::from(value));
    let config = StoreConfig {
        endpoint,
        direct_urls: direct_url,
        ..StoreConfig::from_vars(env)
    };
    let runtime = runtime()?;
    py.detach(move || {
        let store = JobStore::open_with(&locator, &config)?;
        let options = PublishOptions {
            kind,
            pack: pack_options(home),
            progress: None,
        };
        runtime.block_on(resource_store::publish(&store, &leader_path, &options))
    })
    .map(|published| fields(&published.resource))
    .map_err(store_error)
}

/// A Python binary stream as a `Write`, taking the GIL for each chunk; the Python error of a
/// failed write is kept to be raised as it is.
struct PythonStream {
    target: Py<PyAny>,
    failure: Option<PyErr>,
}

impl Write for PythonStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = Python::attach(|py| {
            self.target
                .call_method1(py, "write", (PyBytes::new(py, buf),))
                .map(drop)
        });
        match result {
            Ok(()) => Ok(buf.len()),
            Err(error) => {
                self.failure = Some(error);
                Err(io::Error::other("the job store's stream refused a write"))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams the content of `leader_path` (the file, or the archive of a directory) into the
/// Python binary stream `stream`, in chunks of at most 32 MiB, without holding the GIL while it
/// packs; returns (class name, name, pathHash, contentHash, size).
#[pyfunction]
#[pyo3(signature = (leader_path, stream, class_name=None, home=None))]
fn write_content(
    py: Python<'_>,
    leader_path: PathBuf,
    stream: Py<PyAny>,
    class_name: Option<&str>,
    home: Option<PathBuf>,
) -> PyResult<(String, String, String, String, u64)> {
    let kind = requested_kind(class_name)?;
    let options = PublishOptions {
        kind,
        pack: pack_options(home),
        progress: None,
    };
    let (written, failure) = py.detach(move || {
        let mut out = BufWriter::with_capacity(
            PYTHON_WRITE_CHUNK,
            PythonStream {
                target: stream,
                failure: None,
            },
        );
        let written = resource_store::write_content(&leader_path, &options, &mut out);
        let flushed = out.flush();
        // Flushed above; what may remain in the buffer after a failed write is dropped.
        let (stream, _unwritten) = out.into_parts();
        let written = written.and_then(|written| {
            flushed
                .map(|()| written)
                .map_err(|error| StoreError::io(&leader_path, error))
        });
        (written, stream.failure)
    });
    if let Some(failure) = failure {
        return Err(failure);
    }
    let written = written.map_err(store_error)?;
    Ok((
        class_of(written.kind).to_owned(),
        written.name,
        written.path_hash.to_string(),
        written.content_hash.to_string(),
        written.size,
    ))
}

/// Installs a resource under `root` (`<root>/<contentHash>`) unless it is there already, and
/// returns its local path. The bytes come from its URL, or from `spooled`, a local file that
/// holds them (fetched through Python's `urlopen`). `before_rename` is called with the
/// temporary directory before it is renamed into place (Toil's download callback);
/// `stash=(dirPath, fromVirtualEnv)` writes a module's `.stash` there first.
#[pyfunction]
#[pyo3(signature = (fields, root, env=Vec::new(), spooled=None, before_rename=None, stash=None))]
fn install(
    py: Python<'_>,
    fields: Fields,
    root: PathBuf,
    env: Vec<(String, String)>,
    spooled: Option<PathBuf>,
    before_rename: Option<Py<PyAny>>,
    stash: Option<(PathBuf, bool)>,
) -> PyResult<String> {
    let (class_name, name, path_hash, url, content_hash) = fields;
    let resource = resource_from(&class_name, name, path_hash, url, content_hash)?;
    let stash = stash.map(|(dir_path, from_virtual_env)| {
        ModuleDescriptor {
            dir_path,
            name: String::new(),
            from_virtual_env,
        }
        .stash_contents()
    });
    let config = StoreConfig::from_vars(env);
    let callback_failure: Mutex<Option<PyErr>> = Mutex::new(None);
    let result = py.detach(|| {
        let source = match &spooled {
            Some(path) => {
                let url = resource_store::url::file_url(path);
                let source: std::sync::Arc<dyn resource_store::ByteSource> =
                    std::sync::Arc::new(LocalFileSource::from_url(&url)?);
                source
            }
            None => resource_store::open_url(&resource.url, &config)?,
        };
        let step = |dir: &Path| -> io::Result<()> {
            if let Some(stash) = &stash {
                std::fs::write(dir.join(resource_core::module::STASH_FILE), stash)?;
            }
            if let Some(callback) = &before_rename {
                let called = Python::attach(|py| {
                    callback
                        .call1(py, (dir.to_string_lossy().into_owned(),))
                        .map(drop)
                });
                if let Err(error) = called {
                    *callback_failure
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(error);
                    return Err(io::Error::other("the download callback failed"));
                }
            }
            Ok(())
        };
        resource_store::install(
            &resource,
            &root,
            source,
            Some(&step),
            &InstallOptions::default(),
        )
    });
    if let Some(failure) = callback_failure
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        return Err(failure);
    }
    let installed = result.map_err(store_error)?;
    Ok(installed.path.to_string_lossy().into_owned())
}

/// Whether a URL is one we fetch ourselves (`file:` with a local path, `http(s)://`, `s3://`,
/// `gs://`, `az://`); others go through the Python side's `urlopen`, as Toil fetches them.
#[pyfunction]
#[pyo3(signature = (url, env=Vec::new()))]
fn opens_natively(url: &str, env: Vec<(String, String)>) -> bool {
    resource_store::open_url(url, &StoreConfig::from_vars(env)).is_ok()
}

/// What to ship for a module descriptor (Toil's `_resourcePath` and `_getResourceClass`):
/// (leader path, class name). `ResourceException` for a script inside a package directory.
#[pyfunction]
fn ship_plan(
    dir_path: PathBuf,
    name: String,
    from_virtual_env: bool,
    exact_python: &str,
) -> PyResult<(String, String)> {
    let descriptor = ModuleDescriptor {
        dir_path,
        name,
        from_virtual_env,
    };
    // The empty engine prefix: a module of the engine is shipped too when asked to, as Toil does.
    match plan_shipping(&descriptor, exact_python, "") {
        Ok(Shipping::Ship(plan)) => Ok((
            plan.path.to_string_lossy().into_owned(),
            class_of(plan.kind).to_owned(),
        )),
        Ok(_) => Err(ResourceException::new_err(format!(
            "module {} has nothing to ship",
            descriptor.name
        ))),
        Err(error) => Err(ResourceException::new_err(error_chain(&error))),
    }
}

/// The leader path a module descriptor's resource is registered under (Toil's `_resourcePath`,
/// without the checks of [`ship_plan`]).
#[pyfunction]
fn resource_path(dir_path: PathBuf, name: String, from_virtual_env: bool) -> String {
    ModuleDescriptor {
        dir_path,
        name,
        from_virtual_env,
    }
    .resource_path()
    .to_string_lossy()
    .into_owned()
}

/// Reads the `.stash` in `dir_path`, written by `localize`: (original dirPath, fromVirtualEnv),
/// or `None` when there is none.
#[pyfunction]
fn read_stash(py: Python<'_>, dir_path: PathBuf) -> PyResult<Option<(String, bool)>> {
    let path = dir_path.join(resource_core::module::STASH_FILE);
    let read = py.detach(|| std::fs::read(&path));
    let stash = match read {
        Ok(stash) => stash,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            let message = format!("{}: {error}", path.display());
            return Err(match error.raw_os_error() {
                Some(errno) => PyOSError::new_err((errno, message)),
                None => PyOSError::new_err(message),
            });
        }
    };
    let descriptor = ModuleDescriptor {
        dir_path,
        name: String::new(),
        from_virtual_env: false,
    };
    let original = descriptor.globalized_from_stash(&stash).map_err(|error| {
        PyValueError::new_err(format!("{}: {}", path.display(), error_chain(&error)))
    })?;
    Ok(Some((
        original.dir_path.to_string_lossy().into_owned(),
        original.from_virtual_env,
    )))
}

/// The `_native` module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add(
        "ResourceException",
        module.py().get_type::<ResourceException>(),
    )?;
    module.add_function(wrap_pyfunction!(path_hash, module)?)?;
    module.add_function(wrap_pyfunction!(encode_wire, module)?)?;
    module.add_function(wrap_pyfunction!(decode_wire, module)?)?;
    module.add_function(wrap_pyfunction!(publish, module)?)?;
    module.add_function(wrap_pyfunction!(write_content, module)?)?;
    module.add_function(wrap_pyfunction!(install, module)?)?;
    module.add_function(wrap_pyfunction!(opens_natively, module)?)?;
    module.add_function(wrap_pyfunction!(ship_plan, module)?)?;
    module.add_function(wrap_pyfunction!(resource_path, module)?)?;
    module.add_function(wrap_pyfunction!(read_stash, module)?)?;
    Ok(())
}
