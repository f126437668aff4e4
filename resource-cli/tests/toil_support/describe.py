"""What Toil's ModuleDescriptor.forModule says about a module, loaded the way Toil expects.

The spec holds how: "import" (dir appended to sys.path, then import NAME, as Toil's own
resourceTest does), "script" (PATH run as `python PATH`: it is __main__, its directory first on
sys.path) or "module" (NAME run as `python -m NAME` from dir: __main__ with its __package__).
forModule only reads the module's __file__ and __package__, so the scripts are not executed.
Reports the descriptor, the resource path and class, or the stage that failed and why.
"""

import importlib.machinery
import importlib.util
import os
import sys

from toil_common import emit, spec

from toil.resource import ModuleDescriptor

job = spec()
how = job["how"]
if how == "import":
    sys.path.append(job["dir"])
    importlib.import_module(job["name"])
    name = job["name"]
elif how == "script":
    path = os.path.abspath(job["path"])
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)
    loader = importlib.machinery.SourceFileLoader("__main__", path)
    main = importlib.util.module_from_spec(
        importlib.util.spec_from_file_location("__main__", path, loader=loader)
    )
    sys.modules["__main__"] = main
    name = "__main__"
elif how == "module":
    sys.path[0] = job["dir"]
    found = importlib.util.find_spec(job["name"])
    main = importlib.util.module_from_spec(found)
    main.__name__ = "__main__"
    sys.argv = [found.origin]
    sys.modules["__main__"] = main
    name = "__main__"
else:
    raise ValueError(how)

report = {"ok": False}
stage = "forModule"
try:
    descriptor = ModuleDescriptor.forModule(name)
    report.update(
        dirPath=descriptor.dirPath,
        name=descriptor.name,
        fromVirtualEnv=descriptor.fromVirtualEnv,
    )
    stage = "resourcePath"
    report["resourcePath"] = descriptor._resourcePath
    stage = "resourceClass"
    cls = descriptor._getResourceClass()
    report["resourceClass"] = cls.__module__ + "." + cls.__name__
    report["ok"] = True
except Exception as error:
    report["stage"] = stage
    report["error"] = type(error).__name__ + ": " + str(error)
emit(report)
