"""Inputs shared by the tests of resource_rs (pytest puts this directory on sys.path)."""

import os

import toil.resource as toil_resource

import resource_rs


def make_package(base):
    """A small package `pkg` under `base`, with a subpackage and a non-ASCII source line."""
    package = base / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text("VALUE = 42\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "deep.py").write_text("DEEP = 'é'\n")
    return package


def make_large_file(base):
    """A 12 MiB file: longer than one upload part (5 MiB), ours or Toil's, so that it goes up in
    parts or chunks."""
    path = base / "big.bin"
    path.write_bytes(os.urandom(12 << 20))
    return path


def read_back(job_store, resource):
    """The stored bytes as Toil's job store reads its shared file itself."""
    with job_store.read_shared_file_stream(resource.pathHash) as stream:
        return stream.read()


def check_a_toil_worker_installs_a_package(job_store, base):
    """Creates a package under `base` with ours into `job_store`, then downloads it with Toil's
    own implementation (not ours under its name) and checks what Toil installed."""
    ours = resource_rs.Resource.create(job_store, str(make_package(base)))
    assert not resource_rs.installed()
    toils = toil_resource.Resource.unpickle(ours.pickle())
    assert type(toils) is toil_resource.DirectoryResource
    toils.download()
    assert (toils.localDirPath, toils.contentHash) == (ours.localDirPath, ours.contentHash)
    with open(os.path.join(toils.localPath, "pkg", "sub", "deep.py"), encoding="utf-8") as deep:
        assert deep.read() == "DEEP = 'é'\n"
