"""the-stack-v2's file contents by blob id, fetched as the study did, through the real boto3 client against
moto's standalone S3 server (no real bucket is reachable here): unsigned, gzip-decoded with the row's
encoding, cached atomically, resumable, in the source's order; a missing blob is skipped and counted."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from langdec.core import config
from langdec.data import corpus, study_corpus, swh
from langdec.data.sources import SourceRow, iter_rows


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3():
    port = _port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    client = boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    client.create_bucket(Bucket="softwareheritage")
    # public reads, as Software Heritage's bucket allows; langdec's client sends unsigned requests
    client.put_bucket_policy(
        Bucket="softwareheritage",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::softwareheritage/*",
                    }
                ],
            }
        ),
    )
    yield url, client, proc
    proc.terminate()
    proc.wait(timeout=30)


def _code(i: int) -> str:
    return f"import os\n\n\ndef f{i}(x):\n    '''Add {i}.'''\n    return x + {i}\n" + "".join(
        f"\n\ndef g{i}_{k}(y):\n    return y * {k} + {i}\n" for k in range(3)
    )


def test_contents_are_fetched_in_order_cached_and_resumed(s3, tmp_path):
    url, client, proc = s3
    blobs = {f"{i:040x}": _code(i) for i in range(1, 9)}
    for blob, text in blobs.items():
        client.put_object(Bucket="softwareheritage", Key=f"content/{blob}", Body=gzip.compress(text.encode()))
    client.put_object(
        Bucket="softwareheritage", Key="content/" + "e" * 40, Body="x = 'café'\n".encode("latin-1")
    )  # plain, latin-1
    rows = [SourceRow(f"r/{b}.py", "", extra={"blob_id": b, "src_encoding": "UTF-8"}) for b in blobs]
    rows.insert(3, SourceRow("r/missing.py", "", extra={"blob_id": "f" * 40}))
    rows.append(SourceRow("r/latin.py", "", extra={"blob_id": "e" * 40, "src_encoding": "latin-1"}))
    rows.append(SourceRow("r/inline.py", "print(1)\n"))  # a row that carries its contents passes through
    fetcher = swh.ContentFetcher(endpoint_url=url, workers=3, cache=tmp_path / "cache", retries=1)
    got = list(fetcher.hydrate(rows))
    assert [r.file_path for r in got] == [r.file_path for r in rows if r.file_path != "r/missing.py"]  # order kept
    assert [r.data for r in got[:8]] == list(blobs.values())
    assert got[8].data == "x = 'café'\n" and got[9].data == "print(1)\n"
    assert (fetcher.report.fetched, fetcher.report.cached) == (9, 0)
    assert len(fetcher.report.failed) == 1 and fetcher.report.failed[0].startswith("f" * 40 + ": NoSuchKey")
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()) == sorted([*blobs, "e" * 40])
    proc.terminate()
    proc.wait(timeout=30)  # the server is gone: a second run is served from the cache alone
    again = swh.ContentFetcher(endpoint_url=url, workers=3, cache=tmp_path / "cache", retries=1)
    assert [r.data for r in again.hydrate(rows[:3])] == list(blobs.values())[:3]
    assert (again.report.fetched, again.report.cached) == (0, 3)


def test_a_stack_v2_tier_is_built_from_blob_ids(s3, tmp_path, langdec_home):
    url, client, _ = s3
    records = []
    for i in range(1, 7):
        blob = f"{i:040x}"
        client.put_object(Bucket="softwareheritage", Key=f"content/{blob}", Body=gzip.compress(_code(i).encode()))
        records.append(
            {
                "blob_id": blob,
                "src_encoding": "UTF-8",
                "max_stars_repo_path": f"repo{i}/m{i}.py",
                "detected_licenses": ["MIT"],
                "star_events_count": 40,
            }
        )
    records[2]["detected_licenses"] = ["GPL-3.0"]
    source = tmp_path / "stack-v2.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert next(iter_rows(str(source))).extra["blob_id"] == records[0]["blob_id"]  # no code column: the blob is named
    profile = config.load_profile(
        "smoke",
        [
            f"corpus.source={source}",
            "corpus.filters=study",
            "corpus.sampling=study",
            f"corpus.content_endpoint={url}",
            "corpus.min_lines=3",
            "corpus.tiers={5k: 3}",
        ],
    )
    tier = corpus.build_tier(profile, "5k", 42, progress=False)
    kept = [f"repo{i}/m{i}.py" for i in (1, 2, 4, 5, 6)]
    assert tier.frame["file_path"].tolist() == study_corpus.sample_paths(kept, 3, 42)
    assert tier.frame["code_en"].tolist() == [_code(int(p.split("/")[0][4:])) for p in tier.frame["file_path"]]
    assert tier.manifest["content"]["fetched"] == 6 and tier.manifest["filters"]["removed"] == {"license": 1}


def test_a_bad_endpoint_is_named_before_any_work():
    with pytest.raises(Exception, match="corpus.content_endpoint 'mirror' .* not an http"):
        config.load_profile("smoke", ["corpus.content_endpoint=mirror"])
