"""The report against a small case computed by hand, including a sign flip between extractors."""

from __future__ import annotations

import pytest

from langdec.analysis import report


def _gen(items, outputs, bench="sib200", data="en", instr="en", template="template1"):
    return [
        {"benchmark": bench, "data": data, "template": template, "instr": instr, "item_id": i, "gold": g, "output": o}
        for (i, g), o in zip(items, outputs)
    ]


SIB = [("i1", "sports"), ("i2", "politics"), ("i3", "travel"), ("i4", "health")]
XNLI = [(f"x{n}", "entailment") for n in range(20)]


@pytest.fixture(scope="module")
def built():
    baseline = (
        _gen(SIB, ["sports", "politics and sports", "x", "x"])
        # an instruction language the condition was not evaluated in: must not enter its baseline
        + _gen(SIB, ["sports", "politics", "travel", "health"], instr="zh")
        + _gen(XNLI, ["neutral"] * 20, bench="xnli", data="es")
    )
    frames = [report.frames_of("baseline", "42", baseline)]
    for seed in ("42", "123"):
        cond = _gen(SIB, ["sports", "x", "سفر", "x"]) + _gen(XNLI, ["entailment"] * 20, bench="xnli", data="es")
        frames.append(report.frames_of("cond2-zh", seed, cond))
    return report.build(report.concat(frames))


def test_values_match_the_hand_computation(built):
    base_strict = built.value("baseline", "sib200", "en", "gen.strict")
    assert base_strict.mean == pytest.approx(6 / 8)  # its own value: both instruction languages
    strict = built.value("cond2-zh", "sib200", "en", "gen.strict")
    refined = built.value("cond2-zh", "sib200", "en", "gen.refined")
    # strict reads "politics and sports" as politics and misses Urdu "سفر"; refined calls the first a hedge and reads سفر as travel
    assert strict.baseline == pytest.approx(2 / 4) and strict.mean == pytest.approx(
        1 / 4
    )  # like-for-like: instr en only
    assert refined.baseline == pytest.approx(1 / 4) and refined.mean == pytest.approx(2 / 4)
    assert strict.delta == pytest.approx(-0.25) and refined.delta == pytest.approx(0.25)
    assert strict.per_seed == {"42": 0.25, "123": 0.25} and strict.std == 0.0


def test_sign_flip_and_outcomes(built):
    strict = built.value("cond2-zh", "sib200", "en", "gen.strict")
    refined = built.value("cond2-zh", "sib200", "en", "gen.refined")
    assert strict.outcome == refined.outcome == "tie"  # four items cannot exclude zero
    assert any(f.startswith("sign flips between extractors") for f in strict.flags)
    assert any(f.startswith("sign flips between extractors") for f in refined.flags)
    xnli = built.value("cond2-zh", "xnli", "es", "gen.refined")
    assert (
        xnli.delta == pytest.approx(1.0)
        and xnli.ci == (pytest.approx(1.0), pytest.approx(1.0))
        and xnli.outcome == "win"
    )
    assert any(f.startswith("mostly one label") for f in built.value("baseline", "xnli", "es", "gen.refined").flags)


def test_each_cell_is_counted_once(built):
    assert len(built.cells) == 2 * 2 * 3  # groups x (benchmark, data) x extractors; seeds and templates are not cells
    assert built.summary() == {"cells": 6, "win": 3, "loss": 0, "tie": 3, "sign_flips": 2, "mostly_one_label": 6}


def test_markdown_and_terminal_table(built, tmp_path):
    text = report.markdown(built, [])
    assert "6 condition cells: 3 wins, 0 losses, 3 ties" in text and "2 conclusions flip sign" in text
    table = report.print_table(built)
    assert (
        "cond2-zh" in table and "(+1.000 W) o [+1.000, +1.000]" in table and "xnli/es n=20" in table
    )  # delta's interval
    assert report.heatmap(built, tmp_path / "h.png").stat().st_size > 1000


def test_a_plot_with_nothing_to_show_says_so(tmp_path):
    flat = report.concat(
        [
            report.frames_of("baseline", "42", _gen(SIB, ["x"] * 4)),
            report.frames_of("cond2-zh", "42", _gen(SIB, ["x"] * 4)),
        ]
    )
    built = report.build(flat, rounds=50)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    report.say_if_nothing(ax, [[0.0, 0.0], [0.0, float("nan")]])
    assert [t.get_text() for t in ax.texts] == ["every delta is 0: no condition differs from the baseline here"]
    plt.close(fig)
    assert report.heatmap(built, tmp_path / "flat.png").stat().st_size > 1000


def test_the_html_report_embeds_its_figures(built, tmp_path):
    figure = report.heatmap(built, tmp_path / "delta_heatmap.png")
    page = report.html(report.markdown(built, [figure.name]), tmp_path)
    assert page.count("<img") == 1 and "data:image/png;base64," in page and "<table>" in page
    assert "<th>condition</th>" in page and "cond2-zh" in page


def test_the_xnli_overlap_section_averages_the_logged_diagnostics(store, tmp_path):
    """Two evaluation runs in a real store: the section's values are the means of their logged diagnostics."""
    import mlflow

    from langdec.tracking import runs as tracking

    tracking.configure()
    experiment = tracking.experiment_id("phase-3-smoke")
    for cond, lang, bias in (("baseline", "", (0.5, 0.7)), ("2", "zh", (0.2, 0.4))):
        with mlflow.start_run(
            experiment_id=experiment,
            tags={"langdec.stage": "evaluate", "condition": cond, "lang": lang, "tier": "5k", "seed": "42"},
        ):
            for template, value in zip(("template1", "template2"), bias):
                mlflow.log_metrics(
                    {
                        f"gen.refined.{template}.xnli.data:en.instr:en.reverse_overlap_bias": value,
                        f"gen.refined.{template}.xnli.data:en.instr:en.overlap_low_acc": 1 - value,
                        f"gen.refined.{template}.xnli.data:en.instr:en.overlap_low_pred_neutral": value,
                        f"gen.refined.{template}.xnli.data:en.instr:en.overlap_low_pred_entailment": 1 - value,
                        f"gen.strict.{template}.xnli.data:en.instr:en.reverse_overlap_bias": 0.0,
                    }
                )
    rows = report.overlap_rows(report.latest_runs("phase-3-smoke"), "refined")
    assert rows == {
        "baseline": {
            "reverse_overlap_bias": pytest.approx(0.6),
            "overlap_low_acc": pytest.approx(0.4),
            "overlap_low_pred_neutral": pytest.approx(0.6),
            "overlap_low_pred_entailment": pytest.approx(0.4),
        },
        "cond2-zh": {
            "reverse_overlap_bias": pytest.approx(0.3),
            "overlap_low_acc": pytest.approx(0.7),
            "overlap_low_pred_neutral": pytest.approx(0.3),
            "overlap_low_pred_entailment": pytest.approx(0.7),
        },
    }
    text = "\n".join(report.overlap_markdown(rows, "refined"))
    assert "| cond2-zh | 0.700 |  |  | 0.300 |" in text
    # the distribution table: entailment, neutral, contradiction (not logged: blank), unparsed = the rest (0 here)
    assert (
        "| cond2-zh | low | 0.700 | 0.300 |  | 0.000 |" in text
        and "| baseline | low | 0.400 | 0.600 |  | 0.000 |" in text
    )
    assert "| cond2-zh | high |" not in text  # no bucket without its shares
    # the terminal table: every statistic under its own header, "-" where a cell logged none
    lines = report.overlap_terminal(rows, "refined").splitlines()
    assert lines[1].split("  ")[:2] == ["condition", "acc low overlap"] and lines[1].endswith("reverse overlap bias")
    assert lines[3].split() == ["baseline", "0.400", "-", "-", "0.600"]
    assert report.overlap_plot(rows, tmp_path / "xnli_overlap.png").stat().st_size > 0
    assert report.overlap_markdown({}, "refined") == [] and report.overlap_plot({}, tmp_path / "none.png") is None


def test_the_mixed_language_gap_by_hand():
    pairs = [(f"x{n}", "entailment") for n in range(4)]
    frames = report.concat(
        [
            report.frames_of(
                "cond2-zh",
                "42",
                _gen(pairs, ["entailment"] * 4, bench="xnli", data="es")
                + _gen(pairs, ["entailment", "neutral", "neutral", "neutral"], bench="xnli_mixed", data="es"),
            ),
            report.frames_of(
                "baseline",
                "42",
                _gen(pairs, ["neutral"] * 4, bench="xnli", data="es")
                + _gen(pairs, ["neutral"] * 4, bench="xnli_mixed", data="es"),
            ),
        ]
    )
    built = report.build(frames)
    rows = {r["group"]: r for r in report.variant_gaps(built)}
    assert (rows["cond2-zh"]["own"], rows["cond2-zh"]["variant_acc"], rows["cond2-zh"]["gap"]) == (1.0, 0.25, 0.75)
    assert rows["baseline"]["gap"] == 0.0
    text = "\n".join(report.variant_markdown(report.variant_gaps(built), "refined"))
    assert "| cond2-zh | xnli | xnli_mixed | mixed-language | es | 1.000 | 0.250 | +0.750 |" in text
