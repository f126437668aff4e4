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
