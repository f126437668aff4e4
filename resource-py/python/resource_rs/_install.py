"""Putting our classes under Toil without editing Toil's files.

``install()`` replaces the names of ``toil.resource`` with ours, and every reference to Toil's
classes that modules already imported (``from toil.resource import ModuleDescriptor`` in
``toil.job``, say), so Toil's own code calls ours from then on. Toil's seams stay as they are:
the leader writes through the job store's ``write_shared_file_stream`` and names the resource
with its ``getSharedPublicUrl``, and the worker fetches URLs it does not fetch natively, or all
of them once it has been replaced, through ``toil.resource.urlopen``.
"""

import os
import sys

from . import _api

# Set by install() for child processes (Toil's workers): the wheel's resource_rs_toil.pth
# installs ours at their start when it is "1".
CHILDREN_VARIABLE = "RESOURCE_RS_UNDER_TOIL"

NAMES = (
    "Resource",
    "FileResource",
    "DirectoryResource",
    "VirtualEnvResource",
    "ModuleDescriptor",
    "ResourceException",
)

# Toil's originals while ours are installed, by name.
_originals = {}


def _swap(replacements):
    """Replaces, in every loaded module of Toil's (``toil`` and ``toil.*``), each value that
    ``replacements`` maps by identity. Other modules keep what they imported, so a program can
    hold Toil's classes and ours side by side."""
    for name, module in list(sys.modules.items()):
        if name != "toil" and not name.startswith("toil."):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attribute, value in list(namespace.items()):
            try:
                replacement = replacements.get(id(value))
            except TypeError:
                continue
            if replacement is not None and replacement[0] is value:
                namespace[attribute] = replacement[1]


def install(children=True):
    """Put our classes under Toil: ``toil.resource``'s names, and every module that imported
    them, now refer to ours. With ``children``, sets ``RESOURCE_RS_UNDER_TOIL=1`` so that child
    processes of this interpreter's virtualenv (Toil's workers) start with ours installed.
    Idempotent; ``uninstall()`` puts Toil's back."""
    if children:
        os.environ[CHILDREN_VARIABLE] = "1"
    if _originals:
        return
    import toil.resource as toil_resource

    originals = {name: getattr(toil_resource, name) for name in NAMES}
    ours = {name: getattr(_api, name) for name in NAMES}
    _swap({id(originals[name]): (originals[name], ours[name]) for name in NAMES})
    for name in NAMES:
        setattr(toil_resource, name, ours[name])
    _originals.update(originals)


def uninstall():
    """Put Toil's own classes back where ``install()`` put ours, here and for children."""
    os.environ.pop(CHILDREN_VARIABLE, None)
    if not _originals:
        return
    import toil.resource as toil_resource

    ours = {name: getattr(_api, name) for name in NAMES}
    _swap({id(ours[name]): (ours[name], _originals[name]) for name in NAMES})
    for name in NAMES:
        setattr(toil_resource, name, _originals[name])
    _originals.clear()


def installed():
    """Whether our classes are under Toil in this process."""
    return bool(_originals)
