"""Scoring paths that are optimised must give the numbers of the plain path."""

from __future__ import annotations

import pytest

from langdec.evaluation import benchmarks, inference, prompts


@pytest.mark.slow
def test_prefix_cache_scores_equal_whole_sequence_scores(smoke_profile):
    from langdec.models.loading import load_base_model, load_tokenizer

    model = load_base_model(smoke_profile.model, quantization="none").eval()
    tokenizer = load_tokenizer(smoke_profile.model, padding_side="left")
    closed = []
    for name in ("xnli", "sib200", "belebele", "xcsqa"):
        for lang in ("en", "ur"):
            for item in benchmarks.load(name, lang, source="fixtures", limit=3):
                closed.append((prompts.render("template1", name, "en", item), list(item.options)))
    texts, options = [c[0] for c in closed], [c[1] for c in closed]
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    assert max(lengths) > smoke_profile.model.smoke["sliding_window"]  # the sliding-window layers are exercised
    assert len({len(o) for o in options}) > 1  # items with different option counts share batches
    option_lengths = {len(tokenizer(" " + o, add_special_tokens=False)["input_ids"]) for opts in options for o in opts}
    assert 1 in option_lengths and max(option_lengths) > 1  # one-token options (prompt pass only) and longer ones
    whole = inference.option_logprobs(
        model, tokenizer, texts, options, batch_size=16, max_prompt_tokens=512, reuse_prefix=False
    )
    for batch_size in (16, 3):  # 3: fewer rows than one item's longer options, so batches hold a single prompt
        cached = inference.option_logprobs(
            model, tokenizer, texts, options, batch_size=batch_size, max_prompt_tokens=512, reuse_prefix=True
        )
        for a, b in zip(whole, cached):
            assert b == pytest.approx(a, abs=1e-4)
