"""Ours against Toil's `toil.resource` in one Python process, for `cargo xtask bench --only python`.

    python python_driver.py --work DIR --runs N [--only toil|ours|none]
        --input NAME KIND PATH [--input ...]
        --latency PATH --served DIR --proxy URL

For every round (a warm-up, then N measured), each contender in turn (the order alternates from
round to round, so neither always runs on a warmer cache):
- `Resource.create` of each `--input` (KIND `dir`: DirectoryResource, `venv`: VirtualEnvResource)
  into a fresh FileJobStore, then `download()` of it into a fresh JTRES_ROOT;
- `download()` of the `--latency` directory, created once per contender (untimed) into a
  FileJobStore under `--served` (the directory an HTTP server serves behind a delay proxy) and
  fetched from `--proxy`, the delay proxy's endpoint, into a fresh JTRES_ROOT.
Ours is `resource_rs` (the wheel's package, found on PYTHONPATH), Toil's is `toil.resource`.
Each download is checked (untimed) to hold as many files as its input.

`--only CONTENDER` runs one contender alone (`none`: the imports only), so that the caller can
measure the peak RSS of a process that ran nothing else. Prints one JSON object: `create`,
`download` (input name -> contender -> seconds per measured round), `latency` (contender ->
seconds), `rounds` (downloads of the latency resource per contender, warm-up included).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import toil.resource as toil_resource
from toil.jobStores.fileJobStore import FileJobStore

import resource_rs

CONTENDERS = {"toil": toil_resource, "ours": resource_rs}


def count_files(top):
    return sum(len(files) + sum(os.path.islink(os.path.join(d, n)) for n in dirs)
               for d, dirs, files in os.walk(top))


def file_store(directory):
    """A FileJobStore at `directory`, with only the shared-files directory a resource needs."""
    os.makedirs(os.path.join(directory, FileJobStore.SHARED_FILES_DIR))
    return FileJobStore(directory)


def timed_download(resource, root, expected_files):
    os.makedirs(root)
    os.environ["JTRES_ROOT"] = root
    start = time.perf_counter()
    resource.download()
    seconds = time.perf_counter() - start
    files = count_files(resource.localPath)
    if files != expected_files:
        raise SystemExit(
            "%s unpacked %d files into %s, the input has %d"
            % (type(resource).__module__, files, resource.localPath, expected_files)
        )
    shutil.rmtree(root)
    return seconds


def create_and_download(classes, kind, path, expected_files, scratch):
    store_dir = tempfile.mkdtemp(dir=scratch)
    shutil.rmtree(store_dir)
    store = file_store(store_dir)
    cls = classes.VirtualEnvResource if kind == "venv" else classes.DirectoryResource
    start = time.perf_counter()
    resource = cls.create(store, path)
    created = time.perf_counter() - start
    downloaded = timed_download(resource, os.path.join(scratch, "root"), expected_files)
    shutil.rmtree(store_dir)
    return created, downloaded


def served_resource(name, classes, path, served, proxy):
    """The latency resource created by `classes` into `served/name`, its URL on the proxy."""
    store_dir = os.path.join(served, name)
    if os.path.exists(store_dir):
        shutil.rmtree(store_dir)
    resource = classes.DirectoryResource.create(file_store(store_dir), path)
    prefix = "file:" + served
    if not resource.url.startswith(prefix):
        raise SystemExit("%s stored %s outside %s" % (name, resource.url, served))
    return resource._replace(url=proxy.rstrip("/") + resource.url[len(prefix):])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--only", choices=("toil", "ours", "none"))
    parser.add_argument("--input", nargs=3, action="append", default=[],
                        metavar=("NAME", "KIND", "PATH"))
    parser.add_argument("--latency", required=True)
    parser.add_argument("--served", required=True)
    parser.add_argument("--proxy", required=True)
    args = parser.parse_args()
    names = list(CONTENDERS) if args.only is None else [n for n in CONTENDERS if n == args.only]
    inputs = [(name, kind, path, count_files(path)) for name, kind, path in args.input]
    latency_files = count_files(args.latency)
    results = {
        "create": {name: {c: [] for c in names} for name, _, _, _ in inputs},
        "download": {name: {c: [] for c in names} for name, _, _, _ in inputs},
        "latency": {c: [] for c in names},
        "rounds": args.runs + 1,
    }
    served = {c: served_resource(c, CONTENDERS[c], args.latency, args.served, args.proxy)
              for c in names}
    os.makedirs(args.work, exist_ok=True)
    for round_index in range(args.runs + 1):
        order = names if round_index % 2 == 0 else list(reversed(names))
        for contender in order:
            classes = CONTENDERS[contender]
            scratch = tempfile.mkdtemp(dir=args.work)
            samples = []
            for name, kind, path, files in inputs:
                samples.append((name,) + create_and_download(classes, kind, path, files, scratch))
            latency = timed_download(served[contender], os.path.join(scratch, "root"),
                                     latency_files)
            shutil.rmtree(scratch)
            if round_index == 0:
                continue
            for name, created, downloaded in samples:
                results["create"][name][contender].append(created)
                results["download"][name][contender].append(downloaded)
            results["latency"][contender].append(latency)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
