"""Initialises a Toil FileJobStore at each given path; reports Toil's and Python's versions."""

import sys

from toil_common import emit, init_file_job_store, spec

import toil.version

for path in spec()["stores"]:
    init_file_job_store(path)
emit({"toil": toil.version.version, "python": sys.version.split()[0]})
