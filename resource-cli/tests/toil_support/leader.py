"""Toil's leader side: initialise a FileJobStore, save a file or a module as a resource in it,
register it, and report the variables and the descriptor.

The spec holds store, and either file (a path for FileResource.create) or module (a dotted
name imported after appending dir, if given, to sys.path).
"""

import importlib
import sys

from toil_common import emit, init_file_job_store, registered, spec

from toil.resource import FileResource, ModuleDescriptor

job = spec()
store = init_file_job_store(job["store"])
report = {}
if job.get("file"):
    resource = FileResource.create(store, job["file"])
    report["resourcePath"] = job["file"]
else:
    if job.get("dir"):
        sys.path.append(job["dir"])
    importlib.import_module(job["module"])
    descriptor = ModuleDescriptor.forModule(job["module"])
    resource = descriptor.saveAsResourceTo(store)
    report["command"] = list(descriptor.toCommand())
    report["resourcePath"] = descriptor._resourcePath
resource.register()
report["class"] = type(resource).__name__
report["pickle"] = resource.pickle()
report["env"] = registered()
emit(report)
