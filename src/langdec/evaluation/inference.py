"""Batched greedy generation and log-likelihood option scoring for one model."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm import tqdm

TRUNCATION_SIDES = ("right", "left")


def encode_prompts(
    tokenizer, prompts: Sequence[str], *, max_prompt_tokens: int, truncation_side: str = "right"
) -> list[list[int]]:
    """Token ids of each prompt (special tokens included) cut to `max_prompt_tokens`.

    `right` keeps the prompt's start and drops its end, as the study's preprocessing did
    (`tokenizer(..., truncation=True, max_length=1024)` at the tokenizer's default side);
    `left` keeps the end, where the question and the answer cue are. Both scoring paths
    encode through here, so a long prompt is cut the same way for generation and for
    log-likelihood."""
    if truncation_side not in TRUNCATION_SIDES:
        raise ValueError(f"truncation_side {truncation_side!r}; valid: {', '.join(TRUNCATION_SIDES)}")
    saved = tokenizer.truncation_side
    tokenizer.truncation_side = truncation_side
    try:
        return tokenizer(list(prompts), add_special_tokens=True, truncation=True, max_length=max_prompt_tokens)[
            "input_ids"
        ]
    finally:
        tokenizer.truncation_side = saved


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    max_prompt_tokens: int,
    progress: bool = False,
    samples: int | None = None,
    temperature: float = 0.0,
    stop: Sequence[str] | None = None,
    truncation_side: str = "right",
):
    """Greedy continuations, batched by prompt length with left padding (as the study did).

    With `samples`, returns that many continuations per prompt (a list each), sampled at
    `temperature` (top-p 0.95) when it is above 0, for pass@k. `stop` strings end a sequence's
    generation early (the caller still cuts the text at the first stop)."""
    import torch

    encoded = encode_prompts(tokenizer, prompts, max_prompt_tokens=max_prompt_tokens, truncation_side=truncation_side)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    per_prompt = samples or 1
    sampling = samples is not None and temperature > 0
    outputs: list[list[str]] = [[] for _ in prompts]
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), desc="generate", disable=not progress, leave=False):
        batch = order[start : start + batch_size]
        ids, mask, _ = _left_padded([encoded[i] for i in batch], tokenizer.pad_token_id)
        options = {"do_sample": True, "temperature": temperature, "top_p": 0.95} if sampling else {"do_sample": False}
        if stop:
            options.update(stop_strings=list(stop), tokenizer=tokenizer)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                num_beams=1,
                pad_token_id=tokenizer.pad_token_id,
                num_return_sequences=per_prompt if sampling else 1,
                **options,
            )
        texts = tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        for row, text in enumerate(texts):
            i = batch[row // (per_prompt if sampling else 1)]
            outputs[i].append(text)
    if samples is None:
        return [o[0] for o in outputs]
    # greedy decoding gives one answer; n identical samples would only repeat it
    return [o if sampling else o * per_prompt for o in outputs]


def choose_options(
    model,
    tokenizer,
    prompts: Sequence[str],
    options: Sequence[Sequence[str]],
    *,
    batch_size: int,
    max_prompt_tokens: int,
    progress: bool = False,
    reuse_prefix: bool = True,
    truncation_side: str = "right",
) -> list[int]:
    """Index of the most likely option per prompt (sum of option-token log-probs)."""
    scores = option_logprobs(
        model,
        tokenizer,
        prompts,
        options,
        batch_size=batch_size,
        max_prompt_tokens=max_prompt_tokens,
        progress=progress,
        reuse_prefix=reuse_prefix,
        truncation_side=truncation_side,
    )
    return [max(range(len(s)), key=s.__getitem__) for s in scores]


def option_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str],
    options: Sequence[Sequence[str]],
    *,
    batch_size: int,
    max_prompt_tokens: int,
    progress: bool = False,
    reuse_prefix: bool = True,
    truncation_side: str = "right",
) -> list[list[float]]:
    """Log-probability of each option after its prompt.

    With `reuse_prefix` the prompt runs once (its KV cache is then copied to each of its
    options, which run as a short continuation), instead of once per option: a 4-option item
    costs one prompt pass, not four. Without it, every (prompt, option) runs whole, left-padded,
    with logits only at the answer positions. Both give the same numbers (tested)."""
    encoded = encode_prompts(tokenizer, prompts, max_prompt_tokens=max_prompt_tokens, truncation_side=truncation_side)
    option_ids = [[tokenizer(" " + o, add_special_tokens=False)["input_ids"] for o in opts] for opts in options]
    if reuse_prefix:
        return _scores_with_prefix_cache(model, tokenizer.pad_token_id, encoded, option_ids, batch_size, progress)
    return _scores_whole(model, tokenizer.pad_token_id, encoded, option_ids, batch_size, progress)


def _left_padded(seqs: list[list[int]], pad: int):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    # left padding must not shift rotary positions: count them from the first real token
    return ids, mask, (mask.cumsum(dim=1) - 1).clamp(min=0)


def _scores_with_prefix_cache(
    model, pad: int, prompts: list[list[int]], option_ids: list[list[list[int]]], batch_size: int, progress: bool
) -> list[list[float]]:
    import torch

    device = next(model.parameters()).device
    scores = [[float("-inf")] * len(o) for o in option_ids]
    # A one-token option ("A", "B", ...) is scored by the prompt pass alone; only longer options need
    # a continuation row, and the option pass's rows stay within batch_size.
    widest = max((sum(len(o) > 1 for o in opts) for opts in option_ids), default=0)
    per_batch = max(1, batch_size // max(widest, 1))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for start in tqdm(range(0, len(order), per_batch), desc="log-likelihood", disable=not progress, leave=False):
        batch = order[start : start + per_batch]
        ids, mask, positions = _left_padded([prompts[i] for i in batch], pad)
        with torch.no_grad():
            out = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                use_cache=True,
                logits_to_keep=1,
            )
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # predicts each option's first token
        for b, i in enumerate(batch):
            for j, o in enumerate(option_ids[i]):
                scores[i][j] = float(first[b, o[0]])
        rows = [(b, j) for b, i in enumerate(batch) for j, o in enumerate(option_ids[i]) if len(o) > 1]
        if not rows:
            continue
        cache = out.past_key_values
        cache.batch_select_indices(torch.tensor([b for b, _ in rows], device=device))
        opts = [option_ids[batch[b]][j] for b, j in rows]
        width = max(len(o) for o in opts)
        opt = torch.full((len(rows), width), pad, dtype=torch.long)
        opt_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, o in enumerate(opts):
            opt[r, : len(o)] = torch.tensor(o)
            opt_mask[r, : len(o)] = 1  # right padding: later positions cannot affect earlier ones
        select = torch.tensor([b for b, _ in rows])
        full_mask = torch.cat([mask[select], opt_mask], dim=1)
        opt_positions = positions[select, -1:] + 1 + torch.arange(width)
        with torch.no_grad():
            logits = model(
                input_ids=opt.to(device),
                attention_mask=full_mask.to(device),
                position_ids=opt_positions.to(device),
                past_key_values=cache,
                use_cache=True,
            ).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        for r, (b, j) in enumerate(rows):
            o = opts[r]
            target = torch.tensor(o[1:], device=logprobs.device)
            scores[batch[b]][j] += float(logprobs[r, torch.arange(len(o) - 1), target].sum())
    return scores


def _scores_whole(
    model, pad: int, prompts: list[list[int]], option_ids: list[list[list[int]]], batch_size: int, progress: bool
) -> list[list[float]]:
    import torch

    pairs = [(p, j, prompts[p], o) for p, opts in enumerate(option_ids) for j, o in enumerate(opts)]
    scores = [[float("-inf")] * len(o) for o in option_ids]
    device = next(model.parameters()).device
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][2]) + len(pairs[i][3]))
    for start in tqdm(range(0, len(order), batch_size), desc="log-likelihood", disable=not progress, leave=False):
        batch = [pairs[i] for i in order[start : start + batch_size]]
        ids, mask, positions = _left_padded([prompt + opt for _, _, prompt, opt in batch], pad)
        keep = max(len(opt) for *_, opt in batch) + 1  # `logits_to_keep` skips the prompt's vocabulary projection
        with torch.no_grad():
            logits = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                logits_to_keep=keep,
            ).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        for row, (p, j, _, opt) in enumerate(batch):
            # logits at position t predict token t+1; the option occupies the last len(opt) tokens
            at = torch.arange(keep - 1 - len(opt), keep - 1)
            scores[p][j] = float(logprobs[row, at, torch.tensor(opt, device=logprobs.device)].sum())
    return scores
