"""Tests of resource_rs against the real toil package, in one process."""

import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile
from unittest.mock import MagicMock, patch

import pytest
import toil.resource as toil_resource
from toil.jobStores.fileJobStore import FileJobStore

import resource_rs
from resource_rs import (
    DirectoryResource,
    FileResource,
    ModuleDescriptor,
    Resource,
    ResourceException,
    VirtualEnvResource,
)
from helpers import make_package

KINDS = {
    "file": (FileResource, toil_resource.FileResource),
    "dir": (DirectoryResource, toil_resource.DirectoryResource),
    "venv": (VirtualEnvResource, toil_resource.VirtualEnvResource),
}


def file_job_store(path):
    """A Toil file job store with the directory of shared files its initialize() makes."""
    (path / "shared").mkdir(parents=True)
    return FileJobStore(str(path))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_wire_form_matches_toils_pickle(kind):
    ours_cls, toils_cls = KINDS[kind]
    fields = ("naïve 😀 \"q\"", "0" * 32, "file:/js/shared/a b", "f" * 32)
    ours, toils = ours_cls(*fields), toils_cls(*fields)
    assert ours.pickle() == toils.pickle()
    assert ours.pickle().startswith("toil.resource.%s:[" % toils_cls.__name__)
    # Both directions decode to equal fields, each as its own class.
    assert tuple(toils_cls.unpickle(ours.pickle())) == fields
    back = Resource.unpickle(toils.pickle())
    assert type(back) is ours_cls and back == ours


def test_namedtuple_behaviour():
    resource = FileResource("a.py", "1" * 32, "file:/x", "2" * 32)
    assert resource._fields == ("name", "pathHash", "url", "contentHash")
    assert resource == FileResource(*resource) and hash(resource) == hash(tuple(resource))
    assert resource._replace(url="file:/y").url == "file:/y"
    assert type(resource._replace(url="file:/y")) is FileResource
    assert pickle.loads(pickle.dumps(resource)) == resource
    descriptor = ModuleDescriptor("/d", "m", False)
    assert descriptor._fields == ("dirPath", "name", "fromVirtualEnv")
    assert pickle.loads(pickle.dumps(descriptor)) == descriptor


def test_create_register_lookup_download_in_a_file_job_store(tmp_path, worker_root):
    script = tmp_path / "flow.py"
    script.write_bytes(b"print('hello')\n")
    store = file_job_store(tmp_path / "js")
    resource = Resource.create(store, str(script))
    assert type(resource) is FileResource
    assert resource.name == "flow.py"
    assert resource.pathHash == hashlib.md5(str(script).encode()).hexdigest()
    assert resource.contentHash == hashlib.md5(b"print('hello')\n").hexdigest()
    # Toil's own job store finds it where it keeps shared files, under Toil's URL.
    assert resource.url == store.getSharedPublicUrl(sharedFileName=resource.pathHash)
    with store.read_shared_file_stream(resource.pathHash) as stored:
        assert stored.read() == b"print('hello')\n"

    resource.register()
    assert os.environ["JTRES_" + resource.pathHash] == resource.pickle()
    found = Resource.lookup(str(script))
    assert found == resource and found is not resource
    assert Resource.lookup(str(tmp_path / "other.py")) is None
    seen = []
    found.download(callback=lambda tmp: seen.append(sorted(os.listdir(tmp))))
    assert seen == [["flow.py"]]
    assert found.localPath == os.path.join(str(worker_root), resource.contentHash, "flow.py")
    with open(found.localPath, "rb") as local:
        assert local.read() == b"print('hello')\n"
    found.download(callback=lambda tmp: seen.append(tmp))  # installed: no second download
    assert len(seen) == 1


def test_lookup_refuses_a_copied_variable(worker_root):
    resource = FileResource("a.py", hashlib.md5(b"/a.py").hexdigest(), "file:/x", "2" * 32)
    os.environ["JTRES_" + hashlib.md5(b"/b.py").hexdigest()] = resource.pickle()
    with pytest.raises(RuntimeError, match="pathHash"):
        Resource.lookup("/b.py")


def test_directory_resource_interop_both_ways(tmp_path, worker_root):
    package = make_package(tmp_path)
    store = file_job_store(tmp_path / "js")
    # Ours made, Toil's downloads.
    ours = DirectoryResource.create(store, str(package))
    toils_view = toil_resource.DirectoryResource(*ours)
    toils_view.download()
    assert open(os.path.join(toils_view.localPath, "pkg", "sub", "deep.py")).read() == "DEEP = 'é'\n"
    # Toil's made, ours downloads.
    other = make_package(tmp_path / "other")
    toils = toil_resource.DirectoryResource.create(store, str(other))
    ours_view = Resource.unpickle(toils.pickle())
    assert type(ours_view) is DirectoryResource
    ours_view.download()
    assert sorted(os.listdir(os.path.join(ours_view.localPath, "pkg"))) == ["__init__.py", "mod.py", "sub"]


def test_python_job_store_gets_one_stream_and_the_urlopen_seam(tmp_path, worker_root):
    package = make_package(tmp_path)
    store = MagicMock()
    store.getSharedPublicUrl.return_value = "file://foo.zip"
    resource = DirectoryResource.create(store, str(package))
    store.write_shared_file_stream.assert_called_once_with(
        shared_file_name=resource.pathHash, encrypted=False
    )
    store.getSharedPublicUrl.assert_called_once_with(sharedFileName=resource.pathHash)
    handle = store.write_shared_file_stream.return_value.__enter__.return_value
    archive = b"".join(call[0][0] for call in handle.write.call_args_list)
    assert hashlib.md5(archive).hexdigest() == resource.contentHash
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert "pkg/mod.py" in names and "pkg/sub/deep.py" in names
    # The worker: a URL we do not fetch natively goes through toil.resource.urlopen.
    opener = MagicMock()
    opener.return_value.read.return_value = archive
    with patch("toil.resource.urlopen", opener):
        resource.download()
    opener.assert_called_once_with("file://foo.zip")
    assert open(os.path.join(resource.localPath, "pkg", "mod.py")).read() == "VALUE = 42\n"


class _RecordingBody(io.BytesIO):
    """A body as urlopen returns one (a real stream), recording the size of every read."""

    def __init__(self, data):
        super().__init__(data)
        self.asked = []

    def read(self, size=-1):
        self.asked.append(size)
        return super().read(size)


def test_a_replaced_urlopen_is_streamed_into_the_spool_in_bounded_reads(tmp_path, worker_root):
    data = bytes(range(256)) * (3 * 4096 + 17)  # 3 MiB and a bit: more than one chunk
    blob = tmp_path / "blob.bin"
    blob.write_bytes(data)
    resource = FileResource.create(str(tmp_path / "js"), str(blob))
    body = _RecordingBody(data)
    opener = MagicMock(return_value=body)
    with patch("toil.resource.urlopen", opener):
        resource.download()
    opener.assert_called_once_with(resource.url)
    assert open(resource.localPath, "rb").read() == data
    # Bounded reads only, never one read() of the whole body: constant memory.
    assert all(0 < size <= 1 << 20 for size in body.asked), body.asked
    assert len(body.asked) >= 4


def test_wrong_bytes_are_refused_and_nothing_is_installed(tmp_path, worker_root):
    script = tmp_path / "flow.py"
    script.write_text("x = 1\n")
    resource = FileResource.create(str(tmp_path / "js"), str(script))
    script.write_text("x = 2\n")
    resource_store_copy = resource.url[len("file:"):]
    with open(resource_store_copy, "w") as damaged:
        damaged.write("x = 3\n")
    with pytest.raises(RuntimeError, match="MD5|content|hash"):
        resource.download()
    assert not os.path.exists(resource.localDirPath)


def test_errors_name_the_cause(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.py"):
        FileResource.create(str(tmp_path / "js"), str(tmp_path / "missing.py"))
    (tmp_path / "notvenv").mkdir()
    with pytest.raises(ResourceException, match="site-packages"):
        VirtualEnvResource.create(str(tmp_path / "js"), str(tmp_path / "notvenv"))
    with pytest.raises(ValueError):
        Resource.unpickle("toil.resource.FileResource:[1, 2]")


def test_prepare_and_clean_system(tmp_path, monkeypatch):
    monkeypatch.delenv("JTRES_ROOT", raising=False)
    Resource.prepareSystem()
    root = os.environ["JTRES_ROOT"]
    assert os.path.isdir(root)
    Resource.prepareSystem()
    assert os.environ["JTRES_ROOT"] == root
    os.environ["JTRES_" + "0" * 32] = "x"
    Resource.cleanSystem()
    assert not os.path.exists(root)
    assert not any(name.startswith("JTRES_") for name in os.environ)
    monkeypatch.setenv("JTRES_ROOT", str(tmp_path / "nothing"))
    with pytest.raises(RuntimeError):
        Resource.prepareSystem()


def test_module_descriptor_round_trip_localize_globalize(tmp_path, worker_root):
    make_package(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        import pkg.sub.deep  # noqa: F401

        module = ModuleDescriptor.forModule("pkg.sub.deep")
        toils = toil_resource.ModuleDescriptor.forModule("pkg.sub.deep")
        assert tuple(module) == tuple(toils)
        assert module._resourcePath == toils._resourcePath == str(tmp_path / "pkg")
        assert not module.belongsToToil
        assert ModuleDescriptor.forModule("toil.resource").belongsToToil
        assert module.toCommand() == toils.toCommand()
        assert ModuleDescriptor.fromCommand(module.toCommand()) == module
        with pytest.raises(ValueError):
            ModuleDescriptor.fromCommand((module.dirPath, module.name, "true"))
        with pytest.raises(RuntimeError):
            ModuleDescriptor.fromCommand((module.dirPath, module.name))
        assert module.localize() is module and module.globalize() is module

        resource = module.saveAsResourceTo(str(tmp_path / "js"))
        assert type(resource) is DirectoryResource
        resource.register()
        local = module.localize()
        assert local.dirPath == resource.localDirPath != module.dirPath
        with open(os.path.join(local.dirPath, ".stash")) as stash:
            assert stash.read() == "0" + module.dirPath
        assert local.globalize() == module
        # Toil's globalize reads our stash, ours reads Toil's localisation.
        assert toil_resource.ModuleDescriptor(*local).globalize() == toils
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("pkg.sub.deep", "pkg.sub", "pkg"):
            sys.modules.pop(name, None)


def test_script_checks(tmp_path):
    (tmp_path / "collections.py").write_text(
        "from resource_rs import ModuleDescriptor\nModuleDescriptor.forModule(__name__)\n"
    )
    failed = subprocess.run([sys.executable, str(tmp_path / "collections.py")], capture_output=True)
    # It shadows the standard library's collections, which Python itself needs: it fails.
    assert failed.returncode == 1
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "flow").write_text(
        "from resource_rs import ModuleDescriptor\nModuleDescriptor.forModule(__name__)\n"
    )
    failed = subprocess.run([sys.executable, str(tmp_path / "scripts" / "flow")], capture_output=True)
    assert b"must end in .py or .pyc" in failed.stderr
    (tmp_path / "__init__.py").write_text("")
    with pytest.raises(ResourceException, match="package directory"):
        ModuleDescriptor(str(tmp_path), "flow", False)._resourcePath


def test_install_puts_ours_under_toil():
    import toil.job

    assert toil.job.ModuleDescriptor is toil_resource.ModuleDescriptor
    original = toil_resource.ModuleDescriptor
    resource_rs.install()
    try:
        assert resource_rs.installed()
        assert toil_resource.ModuleDescriptor is ModuleDescriptor
        assert toil.job.ModuleDescriptor is ModuleDescriptor
        from toil.resource import Resource as seen

        assert seen is Resource
    finally:
        resource_rs.uninstall()
    assert toil.job.ModuleDescriptor is original
    assert not resource_rs.installed()
