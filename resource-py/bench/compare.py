"""Ours against Toil's in one Python process: Resource.create + download of a directory, rounds
interleaved, medians printed with the ratio. Usage: python compare.py DIR [ROUNDS]."""

import os
import shutil
import statistics
import sys
import tempfile
import time

import toil.resource as toil_resource
from toil.jobStores.fileJobStore import FileJobStore

import resource_rs


def one_round(classes, directory, scratch):
    store_dir = tempfile.mkdtemp(dir=scratch)
    os.makedirs(os.path.join(store_dir, "shared"))
    store = FileJobStore(store_dir)
    root = tempfile.mkdtemp(dir=scratch)
    os.environ["JTRES_ROOT"] = root
    start = time.perf_counter()
    resource = classes.DirectoryResource.create(store, directory)
    created = time.perf_counter()
    resource.download()
    downloaded = time.perf_counter()
    shutil.rmtree(store_dir)
    shutil.rmtree(root)
    return created - start, downloaded - created


def main():
    directory = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    scratch = tempfile.mkdtemp()
    times = {"toil": ([], []), "ours": ([], [])}
    try:
        for _ in range(rounds):
            for name, classes in (("toil", toil_resource), ("ours", resource_rs)):
                create, download = one_round(classes, directory, scratch)
                times[name][0].append(create)
                times[name][1].append(download)
    finally:
        shutil.rmtree(scratch)
    for index, step in enumerate(("create", "download")):
        toil_median = statistics.median(times["toil"][index])
        ours_median = statistics.median(times["ours"][index])
        print(
            "%-8s toil %8.3f s  ours %8.3f s  ours/toil %.2f"
            % (step, toil_median, ours_median, ours_median / toil_median)
        )


if __name__ == "__main__":
    main()
