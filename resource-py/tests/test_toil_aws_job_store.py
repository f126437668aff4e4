"""Resource.create given Toil's own AWSJobStore, against moto on 127.0.0.1 (started by
`cargo xtask test`, which says where in RESOURCE_TEST_S3_ENDPOINT).

We write the resource natively into the job store's bucket, through its boto3 client's
credentials and endpoint, exactly where Toil's AWS job store keeps a shared file: the job store
reads it back itself, a Toil worker installs it from the URL the job store hands out, and so
do we.
"""

import hashlib
import io
import os
import uuid
import zipfile

import boto3
import pytest
import toil.lib.aws.s3
from toil.common import Config
from toil.jobStores.aws.jobStore import AWSJobStore

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

# No default: without the server the run must fail, not pass quietly.
ENDPOINT = os.environ["RESOURCE_TEST_S3_ENDPOINT"]
REGION = "us-west-2"


@pytest.fixture
def aws_env(tmp_path, monkeypatch):
    """Explicit test credentials, every boto3 client pointed at moto, nothing read from ~/.aws
    and no instance metadata."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "resource-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "resource-test-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", ENDPOINT)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def job_store(aws_env, monkeypatch):
    """A real, initialised Toil AWSJobStore in moto, destroyed after the test."""
    # Toil's create_s3_bucket allows SSE-C on the bucket with a rule that blocks the encryption
    # type NONE; moto 5 answers that rule with MalformedXML (it only knows rules that set a
    # default encryption), so the bucket is made without it. Shared files for hot deployment
    # are written unencrypted (encrypted=False), by Toil and by us, so nothing tested needs it.
    monkeypatch.setattr(toil.lib.aws.s3, "enable_encryption", lambda bucket_name: None)
    store = AWSJobStore("%s:rs-%s" % (REGION, uuid.uuid4().hex[:12]))
    store.initialize(Config())
    yield store
    store.destroy()


@pytest.fixture
def s3(aws_env):
    """A client of our own for looking into the bucket."""
    return boto3.client("s3", region_name=REGION, endpoint_url=ENDPOINT)


def bucket_of(job_store):
    return job_store.bucket_name


def test_the_job_store_is_toils_own(job_store):
    assert type(job_store).__module__ == "toil.jobStores.aws.jobStore"
    assert job_store.bucket_name.endswith("--toil")
    assert job_store.s3_client.meta.endpoint_url == ENDPOINT


@pytest.mark.parametrize("input_kind", ["package", "large file"])
def test_create_writes_natively_where_toil_reads(
    tmp_path, job_store, s3, no_stream, url_requests, input_kind
):
    if input_kind == "package":
        path, expected_class = make_package(tmp_path), DirectoryResource
    else:
        path, expected_class = make_large_file(tmp_path), FileResource
    resource = Resource.create(job_store, str(path))
    assert type(resource) is expected_class
    assert resource.pathHash == hashlib.md5(str(path).encode()).hexdigest()

    # The object is Toil's shared file: key <pathHash> at the root of bucket <name>--toil.
    head = s3.head_object(Bucket=bucket_of(job_store), Key=resource.pathHash)
    stored = read_back(job_store, resource)
    assert head["ContentLength"] == len(stored)
    assert hashlib.md5(stored).hexdigest() == resource.contentHash
    if input_kind == "package":
        names = set(zipfile.ZipFile(io.BytesIO(stored)).namelist())
        # A package is archived under its own name, as Toil archives it.
        assert {"pkg/__init__.py", "pkg/mod.py", "pkg/sub/deep.py"} <= names
    else:
        assert stored == path.read_bytes()

    # The URL is the one the job store hands out for that shared file.
    assert url_requests == [((), {"sharedFileName": resource.pathHash})]
    assert resource.url.startswith("%s/%s/%s?" % (ENDPOINT, bucket_of(job_store), resource.pathHash))


def test_a_toil_worker_installs_it(tmp_path, job_store, worker_root):
    check_a_toil_worker_installs_a_package(job_store, tmp_path)


def test_ours_downloads_it(tmp_path, job_store, worker_root):
    package = make_package(tmp_path)
    resource = Resource.create(job_store, str(package))
    progress = []
    resource.download(callback=lambda *args: progress.append(args))
    with open(os.path.join(resource.localPath, "pkg", "mod.py"), encoding="utf-8") as mod:
        assert mod.read() == "VALUE = 42\n"
    assert str(worker_root) in resource.localDirPath


def test_recreate_is_idempotent_and_uploads_nothing(tmp_path, job_store, s3):
    package = make_package(tmp_path)
    first = Resource.create(job_store, str(package))
    # With versioning on, a second upload of the same key would add a version.
    s3.put_bucket_versioning(
        Bucket=bucket_of(job_store), VersioningConfiguration={"Status": "Enabled"}
    )
    second = Resource.create(job_store, str(package))
    assert second._replace(url=None) == first._replace(url=None)
    assert second.url.split("?")[0] == first.url.split("?")[0]
    versions = s3.list_object_versions(Bucket=bucket_of(job_store), Prefix=first.pathHash)
    keys = [version["Key"] for version in versions.get("Versions", [])]
    assert keys.count(first.pathHash) == 1


def test_a_changed_input_replaces_the_object(tmp_path, job_store):
    script = tmp_path / "flow.py"
    script.write_text("x = 1\n")
    first = FileResource.create(job_store, str(script))
    script.write_text("x = 2\n")
    second = FileResource.create(job_store, str(script))
    assert second.pathHash == first.pathHash and second.contentHash != first.contentHash
    assert read_back(job_store, second) == b"x = 2\n"


def test_refresh_asks_the_job_store_for_a_new_url(tmp_path, job_store):
    script = tmp_path / "flow.py"
    script.write_text("x = 1\n")
    resource = FileResource.create(job_store, str(script))
    # Toil's AWS job store names the parameter `file_id`, the abstract one `shared_file_name`.
    refreshed = resource.refresh(job_store)
    assert refreshed._replace(url=None) == resource._replace(url=None)
    assert refreshed.url.split("?")[0] == resource.url.split("?")[0]


def test_bad_input_raises_and_leaves_no_object(tmp_path, job_store, s3):
    not_a_venv = tmp_path / "notvenv"
    not_a_venv.mkdir()
    (not_a_venv / "x.py").write_text("")
    with pytest.raises(ResourceException, match="site-packages"):
        VirtualEnvResource.create(job_store, str(not_a_venv))
    path_hash = hashlib.md5(str(not_a_venv).encode()).hexdigest()
    listed = s3.list_objects_v2(Bucket=bucket_of(job_store), Prefix=path_hash)
    assert listed["KeyCount"] == 0
    uploads = s3.list_multipart_uploads(Bucket=bucket_of(job_store))
    assert not uploads.get("Uploads")
