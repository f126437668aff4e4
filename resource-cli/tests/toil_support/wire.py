"""Toil's view of our wire forms: unpickle, pickle, lookup, fetch, and Toil's own create.

The spec holds items, each with path, envName, envValue and store (a Toil FileJobStore).
"""

import hashlib
import os
from io import BytesIO
from urllib.parse import unquote

from toil_common import emit, open_file_job_store, spec

from toil.resource import FileResource, Resource

job = spec()
stores = {}
results = []
for item in job["items"]:
    ours = item["envValue"]
    result = {"path": item["path"]}
    unpickled = Resource.unpickle(ours)
    result["class"] = type(unpickled).__name__
    result["fields"] = list(unpickled)
    result["pickle"] = unpickled.pickle()
    os.environ[item["envName"]] = ours
    looked_up = Resource.lookup(item["path"])
    result["lookup"] = None if looked_up is None else looked_up.pickle()
    fetched = BytesIO()
    unpickled._download(fetched)  # fetches our URL and checks our content hash
    result["fetchedMd5"] = hashlib.md5(fetched.getvalue()).hexdigest()
    if isinstance(unpickled, FileResource):
        # Toil's own create of the same leader path into the same store.
        if item["store"] not in stores:
            stores[item["store"]] = open_file_job_store(item["store"])
        store = stores[item["store"]]
        created = FileResource.create(store, item["path"])
        result["toilCreate"] = created.pickle()
        result["toilCreateFields"] = list(created)
    result["urlUnquoted"] = unquote(unpickled.url)
    results.append(result)
emit({"results": results})
