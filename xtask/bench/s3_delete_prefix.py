"""Delete every object under a prefix of an S3 bucket, for `cargo xtask bench`'s S3 sections.

    python s3_delete_prefix.py ENDPOINT BUCKET PREFIX
        Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Lists the objects
        whose key starts with PREFIX, deletes them one by one through the server's S3 API, lists
        again, and fails if anything is left. Prints one JSON object: deleted, a list of
        {"key": KEY, "size": BYTES}.

Each benchmark round uploads under a fresh prefix; deleting it once the round is measured keeps
the servers' data on tmpfs to one round's worth. Deleting through the API (rather than removing
files) is what frees moto's objects, which live in its process and in unlinked temporary files.
"""

import json
import sys

import boto3
from botocore.config import Config


def listed(client, bucket, prefix):
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            yield {"key": entry["Key"], "size": entry["Size"]}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    endpoint, bucket, prefix = sys.argv[1:]
    if not prefix:
        # An empty prefix would empty the whole bucket.
        sys.exit("refusing to delete under an empty prefix")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        # Local servers answer at one address: bucket names go in the path, not the host name.
        config=Config(s3={"addressing_style": "path"}),
    )
    deleted = list(listed(client, bucket, prefix))
    for entry in deleted:
        client.delete_object(Bucket=bucket, Key=entry["key"])
    left = [entry["key"] for entry in listed(client, bucket, prefix)]
    if left:
        sys.exit(f"objects left under {prefix!r} in {bucket!r} after deleting them: {left}")
    json.dump({"deleted": deleted}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
