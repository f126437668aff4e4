"""Toil's ``toil.resource`` API (hot deployment of user code) in-process, backed by Rust.

>>> import resource_rs
>>> resource = resource_rs.Resource.create("/tmp/jobstore", "/home/me/flow.py")  # doctest: +SKIP
>>> resource.register()  # doctest: +SKIP

``install()`` puts these classes under Toil, so that a Toil installation uses them everywhere
it imports them from ``toil.resource``.
"""

from ._api import (
    DirectoryResource,
    FileResource,
    ModuleDescriptor,
    Resource,
    ResourceException,
    VirtualEnvResource,
)
from ._install import install, installed, uninstall

__all__ = [
    "DirectoryResource",
    "FileResource",
    "ModuleDescriptor",
    "Resource",
    "ResourceException",
    "VirtualEnvResource",
    "install",
    "installed",
    "uninstall",
]
