"""Packing: training windows laid end to end in rows of `max_length`, so no step pays for padding,
and no file sees another.

Rows are filled best-fit decreasing. Each row keeps its windows' lengths; the collator turns those
into position ids that restart at 0 per window and masks each window's first label (nothing
predicts across a boundary). With no attention mask, transformers builds a block-diagonal causal
mask from those position ids for SDPA and eager attention; flash-attention's varlen kernels read
the same boundaries from one flattened row. tests/training/test_train.py proves a packed row's loss equals
its files' losses taken one by one.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass


def pack(windows: list[list[int]], max_length: int) -> list[list[int]]:
    """Indices of `windows` per row, best-fit decreasing (each window <= max_length, as
    `train.windows` makes them). Deterministic: ties keep the input order."""
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row), sorted, for a best-fit search in log time
    for i in order:
        n = len(windows[i])
        if n > max_length:
            raise ValueError(f"window {i} has {n} tokens, more than max_length {max_length}")
        at = bisect.bisect_left(free, (n, -1))
        if at < len(free):
            room, row = free.pop(at)
            rows[row].append(i)
            if room - n > 0:
                bisect.insort(free, (room - n, row))
        else:
            rows.append([i])
            if max_length - n > 0:
                bisect.insort(free, (max_length - n, len(rows) - 1))
    return rows


def packed_rows(windows: list[list[int]], max_length: int) -> dict[str, list]:
    """Dataset columns: each row's concatenated ids and its windows' lengths (`seq_lengths`,
    the column TRL's trainer keeps beside input_ids)."""
    rows = pack(windows, max_length)
    return {
        "input_ids": [[t for i in row for t in windows[i]] for row in rows],
        "seq_lengths": [[len(windows[i]) for i in row] for row in rows],
    }


@dataclass
class PackedCollator:
    """Batches packed rows. `flatten` lays the batch out as one row (flash-attention's varlen path
    needs that and reads the boundaries from cu_seq_lens); otherwise one row per packed row, right-
    padded, which keeps SDPA's attention cost per row instead of over the whole batch."""

    pad_token_id: int
    flatten: bool = False

    def __call__(self, features: list[dict]) -> dict:
        import torch

        ids = [list(f["input_ids"]) for f in features]
        labels = [list(f.get("labels") or f["input_ids"]) for f in features]
        lengths = [list(f["seq_lengths"]) for f in features]
        positions = [[p for n in ls for p in range(n)] for ls in lengths]
        for lab, ls in zip(labels, lengths):
            for start in itertools.accumulate(ls[:-1], initial=0):
                lab[start] = -100  # a window's first token is context only
        if self.flatten:
            ids, labels, positions = [sum(ids, [])], [sum(labels, [])], [sum(positions, [])]
        width = max(len(r) for r in ids)
        batch = {
            "input_ids": torch.tensor([r + [self.pad_token_id] * (width - len(r)) for r in ids]),
            "labels": torch.tensor([r + [-100] * (width - len(r)) for r in labels]),
            # padding gets position 0 each, so every pad token is a one-token "file" of its own
            "position_ids": torch.tensor([r + [0] * (width - len(r)) for r in positions]),
        }
        if self.flatten:
            bounds = torch.tensor(list(itertools.accumulate(sum(lengths, []), initial=0)), dtype=torch.int32)
            batch["cu_seq_lens_q"] = batch["cu_seq_lens_k"] = bounds
            batch["max_length_q"] = batch["max_length_k"] = int(max(sum(lengths, [])))
        return batch
