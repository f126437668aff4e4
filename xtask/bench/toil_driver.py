"""Drive Toil 9.6's own hot deployment (`toil.resource`) for `cargo xtask bench`.

    python toil_driver.py create --jobstore DIR --kind dir|venv PATH
        Initialises a fresh FileJobStore at DIR, creates and registers the resource for PATH,
        and prints one JSON object: envName, envValue (the registered JTRES_ variable), seconds
        (time spent in Resource.create only, without interpreter start-up, imports or job-store
        initialisation), contentHash and url.

    python toil_driver.py download PATH
        Meant to run in a fresh environment holding only JTRES_ROOT and the variable printed by
        `create`. Looks the resource up, downloads it, and prints one JSON object: seconds
        (lookup + download), localPath.

The caller measures wall time and peak RSS of each whole process from the outside.
"""

import argparse
import json
import os
import sys
import time


def create(args):
    from toil.common import Config
    from toil.jobStores.fileJobStore import FileJobStore
    from toil.resource import DirectoryResource, VirtualEnvResource

    job_store = FileJobStore(args.jobstore)
    job_store.initialize(Config())
    cls = VirtualEnvResource if args.kind == "venv" else DirectoryResource
    start = time.perf_counter()
    resource = cls.create(job_store, args.path)
    resource.register()
    seconds = time.perf_counter() - start
    env_name = "JTRES_" + resource.pathHash
    json.dump(
        {
            "envName": env_name,
            "envValue": os.environ[env_name],
            "seconds": seconds,
            "contentHash": resource.contentHash,
            "url": resource.url,
        },
        sys.stdout,
    )


def download(args):
    from toil.resource import Resource

    start = time.perf_counter()
    Resource.prepareSystem()
    resource = Resource.lookup(args.path)
    if resource is None:
        raise SystemExit("no JTRES_ variable for " + args.path)
    resource.download()
    seconds = time.perf_counter() - start
    json.dump({"seconds": seconds, "localPath": resource.localPath}, sys.stdout)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p_create = sub.add_parser("create")
    p_create.add_argument("--jobstore", required=True)
    p_create.add_argument("--kind", choices=("dir", "venv"), required=True)
    p_create.add_argument("path")
    p_download = sub.add_parser("download")
    p_download.add_argument("path")
    args = parser.parse_args()
    {"create": create, "download": download}[args.command](args)


if __name__ == "__main__":
    main()
