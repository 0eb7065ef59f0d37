"""File contents of the-stack-v2 from the Software Heritage S3 bucket, fetched as the study did.

`bigcode/the-stack-v2-dedup` rows carry a `blob_id`, not the file: the study fetched each one from
`s3://softwareheritage/content/<blob_id>` (unsigned, gzip-compressed, decoded with the row's
`src_encoding`; stream_the_stack.py). langdec does the same with boto3, with a per-thread client,
bounded look-ahead that keeps the source's order, retries (botocore's standard mode), and a cache on
disk written atomically, so a second run, or one resumed after an interruption, fetches nothing twice.
A blob that cannot be fetched is skipped and counted, as the study skipped it."""

from __future__ import annotations

import gzip
import io
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from langdec.core.atomic import atomic_path
from langdec.core.paths import work_dir
from langdec.data.sources import SourceRow

BUCKET = "softwareheritage"


@dataclass
class FetchReport:
    fetched: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)  # blob ids, with the reason


class ContentFetcher:
    def __init__(
        self,
        *,
        bucket: str = BUCKET,
        endpoint_url: str | None = None,
        workers: int = 16,
        retries: int = 5,
        cache: Path | None = None,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.workers = max(1, workers)
        self.retries = retries
        self.cache = cache or work_dir() / "swh-content"
        self.report = FetchReport()
        self._local = threading.local()
        self._lock = threading.Lock()

    def _client(self):
        # boto3 clients are not shared across threads: one per worker
        if not hasattr(self._local, "client"):
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config

            self._local.client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name="us-east-1",
                config=Config(signature_version=UNSIGNED, retries={"max_attempts": self.retries, "mode": "standard"}),
            )
        return self._local.client

    def _path(self, blob_id: str) -> Path:
        return self.cache / blob_id[:2] / blob_id

    def raw(self, blob_id: str) -> bytes:
        """The stored bytes of one blob, from the cache or the bucket (then cached)."""
        path = self._path(blob_id)
        if path.exists():
            with self._lock:
                self.report.cached += 1
            return path.read_bytes()
        body = self._client().get_object(Bucket=self.bucket, Key=f"content/{blob_id}")["Body"].read()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # an interrupted write never leaves a partial blob behind
            tmp.write_bytes(body)
        with self._lock:
            self.report.fetched += 1
        return body

    @staticmethod
    def decode(raw: bytes, encoding: str | None) -> str:
        try:
            data = gzip.GzipFile(fileobj=io.BytesIO(raw)).read()
        except OSError:  # stored uncompressed
            data = raw
        return data.decode(encoding or "utf-8", errors="replace")

    def _hydrate(self, row: SourceRow) -> SourceRow | None:
        blob_id = row.extra.get("blob_id")
        if not blob_id or row.data:
            return row
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            text = self.decode(self.raw(str(blob_id)), row.extra.get("src_encoding"))
        except (BotoCoreError, ClientError) as exc:
            with self._lock:
                self.report.failed.append(f"{blob_id}: {type(exc).__name__}: {str(exc)[:160]}")
            return None
        return replace(row, data=text)

    def hydrate(self, rows: Iterable[SourceRow]) -> Iterator[SourceRow]:
        """The rows with their contents filled in, in the source's order, at most 2 x workers fetches ahead."""
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            pending: deque = deque()
            stream = iter(rows)
            for row in stream:
                if row.extra.get("blob_id") and not row.data:
                    pending.append(pool.submit(self._hydrate, row))
                else:  # carries its contents: no thread, only its place in the order
                    done = Future()
                    done.set_result(row)
                    pending.append(done)
                if len(pending) >= 2 * self.workers:
                    done = pending.popleft().result()
                    if done is not None:
                        yield done
            while pending:
                done = pending.popleft().result()
                if done is not None:
                    yield done
