"""Resource.create given Toil's own GoogleJobStore, against fake-gcs-server on 127.0.0.1
(started by `cargo xtask test`, which says where in RESOURCE_TEST_GCS_READ_ENDPOINT).

The job store is made as Toil makes it on a leader: `storage.Client()` with the service account
named by GOOGLE_APPLICATION_CREDENTIALS. That account's `token_uri` is a token endpoint served
by this module on 127.0.0.1, so the client refreshes its credentials as it would against Google
and nothing leaves this machine. google-cloud-storage takes the endpoint of both its JSON API
and its signed URLs from API_ENDPOINT_OVERRIDE, so the job store's `getSharedPublicUrl` names
fake-gcs-server too.

We write the resource natively into the job store's bucket, with a bearer token of its client's
credentials, exactly where Toil's Google job store keeps a shared file: the job store reads it
back itself, a Toil worker installs it from the URL the job store hands out, and so do we.
"""

import hashlib
import io
import json
import os
import threading
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from urllib.request import urlopen

import pytest

# No default: without the server the run must fail, not pass quietly.
ENDPOINT = os.environ["RESOURCE_TEST_GCS_READ_ENDPOINT"]
SERVICE_ACCOUNT = os.environ["RESOURCE_TEST_GCS_SERVICE_ACCOUNT"]
PROJECT = "resource-test"

# google-cloud-storage reads API_ENDPOINT_OVERRIDE once, when it is first imported, for the
# endpoint of its JSON API and of the URLs it signs. It is set for that import only; the
# `job_store` fixture checks that it took (a module imported earlier would have read the
# default, Google's own host), before the job store talks to anything.
_override = os.environ.get("API_ENDPOINT_OVERRIDE")
os.environ["API_ENDPOINT_OVERRIDE"] = ENDPOINT
try:
    import google.cloud.storage.blob as storage_blob
    from google.oauth2 import service_account
    from toil.common import Config
    from toil.jobStores.googleJobStore import GoogleJobStore
finally:
    if _override is None:
        del os.environ["API_ENDPOINT_OVERRIDE"]
    else:
        os.environ["API_ENDPOINT_OVERRIDE"] = _override

import resource_rs
import resource_rs._api
from resource_rs import (
    DirectoryResource,
    FileResource,
    Resource,
    ResourceException,
    VirtualEnvResource,
)
from helpers import (
    check_a_toil_worker_installs_a_package,
    make_large_file,
    make_package,
    read_back,
)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class TokenEndpoint:
    """OAuth 2.0's token endpoint for a service account, on 127.0.0.1: every assertion gets a
    fresh access token, and every request is recorded."""

    def __init__(self):
        self.requests = []
        self.issued = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode("ascii"))
                endpoint.requests.append((self.path, form))
                token = "resource-test-token-%d" % len(endpoint.requests)
                endpoint.issued.append(token)
                body = json.dumps(
                    {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/token" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def token_endpoint():
    endpoint = TokenEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture(scope="module")
def google_env(tmp_path_factory, token_endpoint):
    """Toil's client setup sees our service account and nothing else: no other Google variable,
    no emulator variable (which would make the client anonymous), no metadata server."""
    with open(SERVICE_ACCOUNT, encoding="utf-8") as source:
        account = json.load(source)
    account["token_uri"] = token_endpoint.url
    path = tmp_path_factory.mktemp("google") / "service-account.json"
    path.write_text(json.dumps(account))
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("GOOGLE_") or name.startswith("CLOUDSDK_"):
                patch.delenv(name)
        patch.delenv("STORAGE_EMULATOR_HOST", raising=False)
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
        patch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        patch.setenv("GOOGLE_API_USE_CLIENT_CERTIFICATE", "false")
        patch.setenv("CLOUDSDK_CONFIG", str(path.parent / "no-gcloud"))
        patch.setenv("NO_GCE_CHECK", "true")
        patch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
        patch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
        # Toil memoizes its client: one made under other settings must not be reused, and ours
        # must not outlive this module.
        GoogleJobStore.create_client.cache_clear()
        yield account
        GoogleJobStore.create_client.cache_clear()


@pytest.fixture
def job_store(google_env):
    """A real, initialised Toil GoogleJobStore in fake-gcs-server, destroyed after the test."""
    assert storage_blob._API_ACCESS_ENDPOINT == ENDPOINT, "signed URLs would name Google"
    store = GoogleJobStore("%s:rs-%s" % (PROJECT, uuid.uuid4().hex[:12]))
    assert store.storageClient._connection.API_BASE_URL == ENDPOINT, "the client would call Google"
    store.initialize(Config())
    yield store
    store.destroy()


def blob_of(job_store, resource):
    """The object at Toil's name for the shared file, as the job store's client sees it."""
    return job_store.bucket.get_blob(resource.pathHash)


def test_the_job_store_is_toils_own_and_stays_on_this_machine(job_store, token_endpoint):
    assert type(job_store).__module__ == "toil.jobStores.googleJobStore"
    assert job_store.bucketName.endswith("--toil")
    credentials = job_store.storageClient._credentials
    assert isinstance(credentials, service_account.Credentials)
    # Toil's client got its token from our endpoint, with a signed assertion, as from Google.
    assert token_endpoint.requests
    path, form = token_endpoint.requests[-1]
    assert path == "/token" and form["grant_type"] == [JWT_BEARER]
    # Toil's own write, signed URL and read all go to fake-gcs-server.
    with job_store.write_shared_file_stream("harness", encrypted=False) as stream:
        stream.write(b"through Toil")
    url = job_store.getSharedPublicUrl(sharedFileName="harness")
    assert url.startswith("%s/%s/harness?" % (ENDPOINT, job_store.bucketName))
    with urlopen(url) as response:
        assert response.read() == b"through Toil"
    with job_store.read_shared_file_stream("harness") as stream:
        assert stream.read() == b"through Toil"


def test_the_write_authenticates_as_the_job_stores_client(job_store, token_endpoint):
    target = resource_rs._api._native_locator(job_store)
    name = job_store.bucketName[: -len("--toil")]
    assert target.locator == "google:%s:%s" % (PROJECT, name)
    assert target.endpoint == ENDPOINT
    assert target.jobStoreUrl
    settings = dict(target.environment)
    # The client's own token, which our endpoint issued; not the process's credentials file.
    assert settings["GOOGLE_BEARER_TOKEN"] == job_store.storageClient._credentials.token
    assert settings["GOOGLE_BEARER_TOKEN"] in token_endpoint.issued
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in settings


@pytest.mark.parametrize("input_kind", ["package", "large file"])
def test_create_writes_natively_where_toil_reads(
    tmp_path, job_store, no_stream, url_requests, input_kind
):
    if input_kind == "package":
        path, expected_class = make_package(tmp_path), DirectoryResource
    else:
        path, expected_class = make_large_file(tmp_path), FileResource
    resource = Resource.create(job_store, str(path))
    assert type(resource) is expected_class
    assert resource.pathHash == hashlib.md5(str(path).encode()).hexdigest()

    # The object is Toil's shared file: blob <pathHash> at the root of bucket <name>--toil.
    blob = blob_of(job_store, resource)
    stored = read_back(job_store, resource)
    assert blob is not None and blob.size == len(stored)
    assert hashlib.md5(stored).hexdigest() == resource.contentHash
    if input_kind == "package":
        names = set(zipfile.ZipFile(io.BytesIO(stored)).namelist())
        # A package is archived under its own name, as Toil archives it.
        assert {"pkg/__init__.py", "pkg/mod.py", "pkg/sub/deep.py"} <= names
    else:
        assert stored == path.read_bytes()

    # The URL is the one the job store hands out for that shared file.
    assert url_requests == [((), {"sharedFileName": resource.pathHash})]
    assert resource.url.startswith(
        "%s/%s/%s?" % (ENDPOINT, job_store.bucketName, resource.pathHash)
    )


def test_a_toil_worker_installs_it(tmp_path, job_store, worker_root):
    check_a_toil_worker_installs_a_package(job_store, tmp_path)


def test_ours_downloads_it(tmp_path, job_store, worker_root):
    package = make_package(tmp_path)
    resource = Resource.create(job_store, str(package))
    resource.download()
    with open(os.path.join(resource.localPath, "pkg", "mod.py"), encoding="utf-8") as mod:
        assert mod.read() == "VALUE = 42\n"
    assert str(worker_root) in resource.localDirPath


def test_recreate_is_idempotent_and_uploads_nothing(tmp_path, job_store):
    package = make_package(tmp_path)
    first = Resource.create(job_store, str(package))
    generation = blob_of(job_store, first).generation
    second = Resource.create(job_store, str(package))
    assert second._replace(url=None) == first._replace(url=None)
    assert second.url.split("?")[0] == first.url.split("?")[0]
    # Any upload, even of the same bytes, makes a new generation of the object.
    assert blob_of(job_store, second).generation == generation


def test_a_changed_input_replaces_the_object(tmp_path, job_store):
    script = tmp_path / "flow.py"
    script.write_text("x = 1\n")
    first = FileResource.create(job_store, str(script))
    script.write_text("x = 2\n")
    second = FileResource.create(job_store, str(script))
    assert second.pathHash == first.pathHash and second.contentHash != first.contentHash
    assert read_back(job_store, second) == b"x = 2\n"


def test_refresh_asks_the_job_store_for_a_new_url(tmp_path, job_store, url_requests):
    script = tmp_path / "flow.py"
    script.write_text("x = 1\n")
    resource = FileResource.create(job_store, str(script))
    refreshed = resource.refresh(job_store)
    assert refreshed._replace(url=None) == resource._replace(url=None)
    assert refreshed.url.split("?")[0] == resource.url.split("?")[0]
    with urlopen(refreshed.url) as response:
        assert response.read() == b"x = 1\n"


def test_bad_input_raises_and_leaves_no_object(tmp_path, job_store):
    not_a_venv = tmp_path / "notvenv"
    not_a_venv.mkdir()
    (not_a_venv / "x.py").write_text("")
    with pytest.raises(ResourceException, match="site-packages"):
        VirtualEnvResource.create(job_store, str(not_a_venv))
    path_hash = hashlib.md5(str(not_a_venv).encode()).hexdigest()
    assert list(job_store.bucket.list_blobs(prefix=path_hash)) == []


def test_a_job_store_unlike_toils_is_written_through_its_stream(tmp_path, job_store, monkeypatch):
    # Without the client we take credentials from, the job store's own stream writes it.
    monkeypatch.delattr(job_store, "storageClient")
    streamed = []
    original = job_store.write_shared_file_stream

    def recorded(*args, **kwargs):
        streamed.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(job_store, "write_shared_file_stream", recorded)
    script = tmp_path / "flow.py"
    script.write_text("x = 3\n")
    resource = FileResource.create(job_store, str(script))
    assert streamed == [{"shared_file_name": resource.pathHash, "encrypted": False}]
    assert read_back(job_store, resource) == b"x = 3\n"
