"""Shared by the Toil drivers of `toil_interop.rs`: job stores and the JSON report.

Every driver takes one JSON argument and prints one JSON object as the last line of stdout.
"""

import json
import os
import sys

# Nothing the drivers import may leave __pycache__ behind in a tree that is compared or shipped.
sys.dont_write_bytecode = True


def spec():
    return json.loads(sys.argv[1])


def emit(report):
    sys.stdout.flush()
    sys.stdout.write("\n" + json.dumps(report) + "\n")
    sys.stdout.flush()


def init_file_job_store(path):
    """A job store initialised by Toil itself, as `toil` does for `file:PATH`."""
    from toil.common import Config
    from toil.job import Job
    from toil.jobStores.fileJobStore import FileJobStore

    config = Config()
    config.setOptions(Job.Runner.getDefaultOptions("file:" + path))
    store = FileJobStore(path)
    store.initialize(config)
    return store


def open_file_job_store(path):
    from toil.jobStores.fileJobStore import FileJobStore

    store = FileJobStore(path)
    store.resume()
    return store


def registered():
    """The variables `register()` and `prepareSystem()` put into the environment."""
    return {k: v for k, v in os.environ.items() if k.startswith("JTRES_")}
