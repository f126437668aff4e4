"""Inputs shared by the tests of resource_rs (pytest puts this directory on sys.path)."""

import os


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
