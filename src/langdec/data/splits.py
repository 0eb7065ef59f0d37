"""Which files are held out for validation: the same files in every condition of a tier."""

from __future__ import annotations

import hashlib
import math


def validation_idx(idx: list[int], seed: int, ratio: float) -> set[int]:
    """Chosen by keyed hash of idx, so the split depends on the files, never on the condition."""
    ranked = sorted(idx, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    return set(ranked[: max(1, math.ceil(len(ranked) * ratio))]) if len(ranked) > 1 else set()
