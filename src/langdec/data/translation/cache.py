"""A content-addressed cache of model answers, so a re-run (or a resumed run) never pays twice.

The key is the SHA-256 of (backend, model, prompt version, the exact messages):
the messages hold the input text and the target language, so any change to the
input, the model or the prompt is a miss. One small JSON file per answer,
written atomically as soon as it arrives: an interrupted run keeps every answer
it already paid for, and concurrent workers never see a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from langdec.core.atomic import write_text
from langdec.data.translation.backends import Completion


@dataclass
class AnswerCache:
    root: Path

    def key(self, backend: str, model: str, prompt_version: str, messages: list[dict[str, str]]) -> str:
        blob = json.dumps([backend, model, prompt_version, messages], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Completion | None:
        path = self._path(key)
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return Completion(saved["text"], saved["input_tokens"], saved["output_tokens"])

    def put(self, key: str, completion: Completion) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(
            path,
            json.dumps(
                {
                    "text": completion.text,
                    "input_tokens": completion.input_tokens,
                    "output_tokens": completion.output_tokens,
                },
                ensure_ascii=False,
            ),
        )
