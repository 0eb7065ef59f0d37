"""A training job's files as the trainer's rows: tokenized (each cut to its first tokens, as the study did, or
split into overlapping windows so nothing is cut), counted, and laid out one window per row or packed end to end."""

from __future__ import annotations

from dataclasses import dataclass


def windows(token_ids: list[int], max_length: int) -> list[list[int]]:
    """Split one file into windows that overlap by one token, so every token after the
    first is a prediction target exactly once and nothing is truncated."""
    if len(token_ids) <= max_length:
        return [token_ids]
    stride = max_length - 1
    out = []
    for start in range(0, len(token_ids) - 1, stride):
        out.append(token_ids[start : start + max_length])
    return out


@dataclass
class WindowStats:
    files: int
    windows: int
    tokens: int  # tokens in the files, BOS/EOS included
    target_tokens: int  # tokens that are prediction targets
    dropped_tokens: int = 0  # cut off the end of long files (long_files: truncate)


def tokenize_truncated(codes: list[str], tokenizer, max_length: int) -> tuple[list[list[int]], WindowStats]:
    """The study's pretokenization: each file encoded with the tokenizer's own special tokens and cut to its first
    `max_length` tokens (`tokenizer(code, truncation=True, max_length=...)`); what is cut is counted."""
    full = tokenizer(codes, add_special_tokens=True)["input_ids"]
    out = [ids[:max_length] for ids in full]
    tokens = sum(len(ids) for ids in full)
    kept = sum(len(ids) for ids in out)
    return out, WindowStats(len(codes), len(out), tokens, sum(max(len(ids) - 1, 0) for ids in out), tokens - kept)


def tokenize_files(
    codes: list[str], tokenizer, max_length: int, long_files: str
) -> tuple[list[list[int]], WindowStats]:
    return (tokenize_truncated if long_files == "truncate" else tokenize_windows)(codes, tokenizer, max_length)


def tokenize_windows(codes: list[str], tokenizer, max_length: int) -> tuple[list[list[int]], WindowStats]:
    encoded = tokenizer(codes, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out: list[list[int]] = []
    tokens = targets = 0
    for ids in encoded:
        full = bos + ids + eos
        tokens += len(full)
        parts = windows(full, max_length)
        targets += sum(len(p) - 1 for p in parts)
        out.extend(parts)
    return out, WindowStats(len(codes), len(out), tokens, targets)


def dataset(ids: list[list[int]], pack_to: int | None = None):
    """One row per window, or (packing) windows laid end to end in rows of `pack_to` tokens."""
    from datasets import Dataset

    from langdec.training.packing import packed_rows

    return Dataset.from_dict(packed_rows(ids, pack_to) if pack_to else {"input_ids": ids})
