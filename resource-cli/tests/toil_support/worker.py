"""Toil's worker side: prepareSystem, lookup, localize, download, load a module and call it.

Named worker.py so that ModuleDescriptor._runningOnWorker() recognises it. The spec holds:
path (the leader path to look up), command (a module descriptor's three strings, or null),
call (a function to call in the loaded module), file_module (a module to import from a file
resource's directory), run (arguments to run the localised module with `python -m`).
"""

import importlib
import os
import subprocess
import sys

from toil_common import emit, registered, spec

from toil.resource import ModuleDescriptor, Resource

job = spec()
Resource.prepareSystem()
report = {"root": os.environ[Resource.rootDirPathEnvName]}
resource = Resource.lookup(job["path"])
report["class"] = None if resource is None else type(resource).__name__
if resource is None:
    emit(report)
    sys.exit(0)
report["pickle"] = resource.pickle()
report["registered"] = registered()

module = None
if job.get("command") is not None:
    original = ModuleDescriptor.fromCommand(job["command"])
    # localize() downloads with the .stash callback, so it comes before download().
    localized = original.localize()
    report["localized"] = list(localized.toCommand())
    report["globalized"] = list(localized.globalize().toCommand())
    if job.get("call"):
        # What Toil's worker does with the user module: load() localises and imports it.
        module = ModuleDescriptor.fromCommand(job["command"]).load()

resource.download()
report["localDirPath"] = resource.localDirPath
report["localPath"] = resource.localPath
report["exists"] = os.path.exists(resource.localPath)

if job.get("file_module"):
    sys.path.insert(0, resource.localDirPath)
    module = importlib.import_module(job["file_module"])
if job.get("call"):
    report["moduleFile"] = module.__file__
    report["answer"] = getattr(module, job["call"])()
if job.get("run") is not None:
    # Run the localised module as `cd DIR && python -m NAME ARGS…` would.
    ran = subprocess.run(
        [sys.executable, "-m", report["localized"][1], *job["run"]],
        cwd=report["localized"][0],
        capture_output=True,
    )
    report["run"] = {
        "stdout": ran.stdout.decode("utf-8", "replace"),
        "stderr": ran.stderr.decode("utf-8", "replace"),
        "code": ran.returncode,
    }
emit(report)
