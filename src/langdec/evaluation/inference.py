"""Batched greedy generation and log-likelihood option scoring for one model."""

from __future__ import annotations

from typing import Sequence

from tqdm import tqdm


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int,
             max_prompt_tokens: int, progress: bool = False, samples: int | None = None, temperature: float = 0.0):
    """Greedy continuations, batched by prompt length with left padding (as the study did).

    With `samples`, returns that many continuations per prompt (a list each), sampled at
    `temperature` (top-p 0.95) when it is above 0, for pass@k."""
    import torch

    tokenizer.padding_side = "left"
    truncation_side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"  # keep the instruction's end, where the answer cue is
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    per_prompt = samples or 1
    sampling = samples is not None and temperature > 0
    outputs: list[list[str]] = [[] for _ in prompts]
    device = next(model.parameters()).device
    try:
        for start in tqdm(range(0, len(order), batch_size), desc="generate", disable=not progress, leave=False):
            batch = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, truncation=True,
                            max_length=max_prompt_tokens).to(device)
            options = {"do_sample": True, "temperature": temperature, "top_p": 0.95} if sampling else {"do_sample": False}
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, num_beams=1, pad_token_id=tokenizer.pad_token_id,
                                     num_return_sequences=per_prompt if sampling else 1, **options)
            new = out[:, enc["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for row, text in enumerate(texts):
                i = batch[row // (per_prompt if sampling else 1)]
                outputs[i].append(text)
    finally:
        tokenizer.truncation_side = truncation_side
    if samples is None:
        return [o[0] for o in outputs]
    # greedy decoding gives one answer; n identical samples would only repeat it
    return [o if sampling else o * per_prompt for o in outputs]


def choose_options(model, tokenizer, prompts: Sequence[str], options: Sequence[Sequence[str]], *, batch_size: int,
                   max_prompt_tokens: int, progress: bool = False) -> list[int]:
    """Index of the most likely option per prompt (sum of option-token log-probs), computing
    logits only at the answer positions: sequences are left-padded so every option ends at
    the last position, and `logits_to_keep` skips the prompt's vocabulary projection."""
    import torch

    pairs: list[tuple[int, list[int], list[int]]] = []
    for p, (prompt, opts) in enumerate(zip(prompts, options)):
        prompt_ids = tokenizer(prompt, add_special_tokens=True, truncation=True, max_length=max_prompt_tokens)["input_ids"]
        for opt in opts:
            pairs.append((p, prompt_ids, tokenizer(" " + opt, add_special_tokens=False)["input_ids"]))
    scores = [[float("-inf")] * len(o) for o in options]
    counters = [0] * len(prompts)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]) + len(pairs[i][2]))
    slot = {}
    for i, (p, _, _) in enumerate(pairs):
        slot[i] = counters[p]
        counters[p] += 1
    for start in tqdm(range(0, len(order), batch_size), desc="log-likelihood", disable=not progress, leave=False):
        batch = order[start : start + batch_size]
        seqs = [pairs[i][1] + pairs[i][2] for i in batch]
        width = max(len(s) for s in seqs)
        keep = max(len(pairs[i][2]) for i in batch) + 1
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        # Left padding must not shift rotary positions: count them from the first real token.
        positions_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions_ids.to(device),
                           logits_to_keep=keep).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        for row, i in enumerate(batch):
            p, _, opt_ids = pairs[i]
            n = len(opt_ids)
            # logits at position t predict token t+1; the option occupies the last n tokens
            positions = torch.arange(keep - 1 - n, keep - 1)
            target = torch.tensor(opt_ids, device=logprobs.device)
            scores[p][slot[i]] = float(logprobs[row, positions, target].sum())
    return [max(range(len(s)), key=s.__getitem__) for s in scores]
