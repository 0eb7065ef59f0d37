"""langdec's evaluation against the study's own: rendered prompts byte for byte, both extractors case by
case, prompt truncation the same way in both scoring paths.

The expected values come from the study's code (legesher/research, expedition-tiny-aya/evaluation/scripts)
run on the same inputs, stored as data: tests/fixtures/study_prompts.jsonl and study_extractor_cases.yaml.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from langdec.evaluation import benchmarks, extractors, inference, prompts

DATA = Path(__file__).resolve().parents[1] / "fixtures"
STUDY_PROMPTS = [
    json.loads(line) for line in (DATA / "study_prompts.jsonl").read_text(encoding="utf-8").splitlines() if line
]
STUDY_CASES = yaml.safe_load((DATA / "study_extractor_cases.yaml").read_text(encoding="utf-8"))


def _item(bench: str, data: str, item_id: str) -> benchmarks.Item:
    return next(it for it in benchmarks.load(bench, data) if it.id == item_id)


def test_every_rendered_prompt_is_the_studys_byte_for_byte():
    identical = {}
    for row in STUDY_PROMPTS:
        ours = prompts.render(
            row["template"], row["benchmark"], row["instr"], _item(row["benchmark"], row["data"], row["item_id"])
        )
        key = (row["benchmark"], row["template"], row["instr"])
        identical[key] = identical.get(key, True) and ours == row["prompt"]
        assert ours == row["prompt"], f"{key} data={row['data']} item {row['item_id']}"
    # 4 benchmarks x 2 templates x 4 instruction languages, each on 2 items of all 4 data languages
    assert len(identical) == 32 and all(identical.values())
    assert len(STUDY_PROMPTS) == 256


def test_the_study_set_is_the_default_and_langdec_wording_is_a_named_set():
    row = next(r for r in STUDY_PROMPTS if r["benchmark"] == "xnli" and r["instr"] == "en")
    item = _item("xnli", row["data"], row["item_id"])
    assert prompts.render(row["template"], "xnli", "en", item) == row["prompt"]
    assert prompts.render(row["template"], "xnli", "en", item, "langdec") != row["prompt"]
    assert "entailment, contradiction, or neutral" in row["prompt"]  # the study's label order
    # the study published no MGSM prompts: its set falls back to langdec's and says so
    assert prompts.resolve("study", "template1", "mgsm", "es")[1] == "langdec"
    assert prompts.instruction_languages("study") == ["en", "es", "ur", "zh"]


def test_prompts_command_prints_what_the_evaluation_sends(tmp_path):
    rows = [
        r
        for r in STUDY_PROMPTS
        if (r["benchmark"], r["data"], r["instr"], r["template"]) == ("belebele", "ur", "zh", "template2")
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "langdec.cli",
            "benchmarks",
            "prompts",
            "belebele",
            "--data-lang",
            "ur",
            "--instr",
            "zh",
            "--template",
            "template2",
            "--limit",
            "2",
            "--slice",
            "head",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["id"], p["prompt"], p["prompt_set"]) for p in printed] == [
        (r["item_id"], r["prompt"], "study") for r in rows
    ]
    assert all(p["gold"] in "ABCD" for p in printed)
    bad = subprocess.run(
        [sys.executable, "-m", "langdec.cli", "benchmarks", "prompts", "xnli", "--data-lang", "es", "--instr", "fr"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert (
        bad.returncode == 2
        and "has no instruction language 'fr'" in bad.stderr
        and len(bad.stderr.strip().splitlines()) == 1
    )


@pytest.mark.parametrize("case", STUDY_CASES, ids=lambda c: f"{c['benchmark']}:{c['output'][:24]!r}")
def test_strict_and_refined_give_the_studys_label(case):
    assert extractors.get("strict")(case["benchmark"], case["output"]) == case["strict"]
    assert extractors.get("refined")(case["benchmark"], case["output"]) == case["refined"]


def test_the_case_file_covers_the_studys_tests_and_its_named_examples():
    assert len(STUDY_CASES) == 160
    by = {(c["benchmark"], c["output"]): c for c in STUDY_CASES}
    assert by[("xcsqa", "ANSWER: C")]["strict"] == "C"
    assert by[("sib200", "سیاست/تکنالوجی")]["refined"] is None  # the study's deliberate hedge
    assert by[("xnli", "کوئی واضح تعلق نہیں ہے")]["refined"] == "neutral"
    assert by[("sib200", "physics")]["strict"] == by[("sib200", "physics")]["refined"] == "science/technology"


def test_langdec_is_a_superset_of_refined():
    """Wherever refined reads an answer langdec reads the same one, and it keeps refined's hedges and negations
    unanswered; where refined reads nothing, langdec's own rules read the native words of every language."""
    langdec = extractors.get("langdec")
    assert [c for c in STUDY_CASES if langdec(c["benchmark"], c["output"]) != c["refined"]] == []  # 160 of 160
    assert langdec("sib200", "سیاست/تکنالوجی") is None and langdec("xnli", "没有entailment") is None
    assert langdec.trace("xnli", "答案是entailment") == ("entailment", "refined:tier2_glued")
    for bench, answer, label in (
        ("xnli", "是", "entailment"),
        ("xnli", "无关", "neutral"),
        ("sib200", "科技", "science/technology"),
        ("sib200", "运动", "sports"),
        ("belebele", "Ｂ", "B"),
        ("xcsqa", "Ｃ", "C"),
    ):
        assert extractors.get("refined")(bench, answer) is None
        assert langdec(bench, answer) == label
    assert extractors.get("langdec").version not in {
        extractors.get("strict").version,
        extractors.get("refined").version,
    }


@pytest.mark.slow
def test_a_long_prompt_is_cut_the_same_way_in_both_scoring_paths(smoke_profile):
    """The study cut at max length keeping the start (right truncation); generation and log-likelihood must agree."""
    import torch

    from langdec.models.loading import load_base_model, load_tokenizer

    model = load_base_model(smoke_profile.model, quantization="none").eval()
    tokenizer = load_tokenizer(smoke_profile.model, padding_side="left")
    item = benchmarks.load("belebele", "en")[0]
    long_prompt = prompts.render("template1", "belebele", "en", item).replace(
        "Passage: ", "Passage: " + "rain fell on the hill. " * 60
    )
    short_prompt = "Question: which letter?\nA. one\nB. two\nAnswer:"
    full = tokenizer(long_prompt)["input_ids"]
    limit = 64
    assert len(full) > 3 * limit
    for side, kept in (("right", full[:limit]), ("left", full[-limit:])):
        ids = inference.encode_prompts(
            tokenizer, [long_prompt, short_prompt], max_prompt_tokens=limit, truncation_side=side
        )
        assert ids[0] == kept and len(ids[1]) < limit
        # generation: the same continuation as generating from the cut ids directly
        got = inference.generate(
            model,
            tokenizer,
            [long_prompt, short_prompt],
            max_new_tokens=4,
            batch_size=2,
            max_prompt_tokens=limit,
            truncation_side=side,
        )
        with torch.no_grad():
            direct = model.generate(
                input_ids=torch.tensor([ids[0]]),
                attention_mask=torch.ones(1, len(ids[0]), dtype=torch.long),
                max_new_tokens=4,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        assert got[0] == tokenizer.decode(direct[0, len(ids[0]) :], skip_special_tokens=True)
        # log-likelihood: the same scores as scoring the cut ids directly
        options = [["A", "B", "C", "D"], ["A", "B"]]
        scored = inference.option_logprobs(
            model,
            tokenizer,
            [long_prompt, short_prompt],
            options,
            batch_size=4,
            max_prompt_tokens=limit,
            truncation_side=side,
        )
        opt_ids = [[tokenizer(" " + o, add_special_tokens=False)["input_ids"] for o in opts] for opts in options]
        expected = inference._scores_whole(model, tokenizer.pad_token_id, ids, opt_ids, 4, False)
        assert scored[0] == pytest.approx(expected[0], abs=1e-4)
    assert tokenizer.truncation_side == "right"  # restored
    with pytest.raises(ValueError, match="truncation_side"):
        inference.encode_prompts(tokenizer, [short_prompt], max_prompt_tokens=limit, truncation_side="middle")
