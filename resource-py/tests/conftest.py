"""Fixtures shared by the tests of resource_rs."""

import os

import pytest


@pytest.fixture
def worker_root(tmp_path, monkeypatch):
    """A fresh JTRES_ROOT and no registered resources; the environment is restored after."""
    for name in list(os.environ):
        if name.startswith("JTRES_"):
            monkeypatch.delenv(name)
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("JTRES_ROOT", str(root))
    return root


@pytest.fixture
def no_stream(job_store, monkeypatch):
    """Makes the job store's own stream fail, so that only a native write can succeed (for the
    tests of a Toil job store, whose module defines `job_store`)."""

    def refuse(*args, **kwargs):
        raise AssertionError("write_shared_file_stream was used; the write was not native")

    monkeypatch.setattr(job_store, "write_shared_file_stream", refuse)


@pytest.fixture
def url_requests(job_store, monkeypatch):
    """Records the job store's getSharedPublicUrl calls, which still answer as Toil's do."""
    calls = []
    original = job_store.getSharedPublicUrl

    def recorded(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(job_store, "getSharedPublicUrl", recorded)
    return calls
