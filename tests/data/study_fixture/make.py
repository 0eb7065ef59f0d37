"""Write the study fixture, then run the study's own scripts on it and keep their outputs as the expected files.

    python tests/data/study_fixture/make.py --study PATH_TO_legesher/research

Run once (see README.md); what it writes is committed. Nothing here is langdec: the fixture's answers are drawn
here, scored by the study's own extractors (its inference-time extractor executed from evaluate.ipynb, its
reparse_results.py run as a script), and every expected file is written by the study's scripts, run as they are
with their Hugging Face calls answered from the local folders (a small stand-in `huggingface_hub` module).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "experiments"
EXPECTED = HERE / "expected"
CASES = HERE.parent / "study_extractor_cases.yaml"

LANGS = ("en", "zh", "es", "ur")
BENCHES = ("xnli", "csqa", "sib200", "belebele")  # the study's run order
SESSIONS = [("baseline", "none"), ("condition-1-en-5k", "42"), ("condition-1-en-5k", "123"), ("condition-1-en-20k", "42"),
            ("condition-2-ur-5k", "42"), ("condition-2-ur-5k", "123"), ("condition-2-ur-5k", "456"), ("condition-2-ur-20k", "42"),
            ("condition-2-zh-5k", "42"), ("condition-3-zh-5k", "42"), ("condition-5-es-5k", "42"), ("condition-5-ur-5k", "42"),
            ("condition-5-zh-5k", "42")]
# items per (benchmark, data language), and their gold labels in order
GOLD = {"xnli": ["entailment", "neutral", "contradiction"] * 2, "csqa": list("ABCDE"),
        "sib200": ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"],
        "belebele": list("ABCD")}
NATIVE = {  # answer words per instruction language: what the study's refined tables, langdec's, or neither read
    "xnli": {"zh": {"entailment": ["蕴含", "是"], "neutral": ["中立", "无关"], "contradiction": ["矛盾", "否"]},
             "es": {"entailment": ["implicación"], "neutral": ["neutro"], "contradiction": ["contradicción"]},
             "ur": {"entailment": ["لازمی"], "neutral": ["غیرجانبدار"], "contradiction": ["تردید"]}},
    "sib200": {"zh": {"science/technology": ["科学/技术", "科技"], "travel": ["旅行"], "politics": ["政治"], "sports": ["体育", "运动"],
                      "health": ["健康"], "entertainment": ["娱乐"], "geography": ["地理"]},
               "es": {"science/technology": ["ciencia y tecnología"], "travel": ["viajes"], "politics": ["política"],
                      "sports": ["deportes"], "health": ["salud"], "entertainment": ["entretenimiento"], "geography": ["geografía"]},
               "ur": {"science/technology": ["سائنس/تکنالوجی"], "travel": ["سفر"], "politics": ["سیاست"], "sports": ["کھیل"],
                      "health": ["صحت"], "entertainment": ["تفریح"], "geography": ["جغرافیہ"]}}}
# how each session answers: chance of the gold label, then the weights of answer shapes
STYLE = {"baseline": (0.6, {"plain": 6, "native": 1, "glued": 1, "science": 1, "case": 1, "junk": 1}),
         "condition-1": (0.62, {"plain": 6, "native": 1, "glued": 1, "science": 1, "case": 1, "junk": 1}),
         "condition-2-ur": (0.85, {"plain": 2, "native": 1, "glued": 1, "science": 2, "compound": 6, "case": 1, "junk": 1}),
         "condition-2-zh": (0.6, {"plain": 4, "native": 3, "glued": 2, "science": 1, "case": 1, "junk": 1}),
         "condition-3": (0.58, {"plain": 5, "native": 2, "glued": 1, "science": 1, "case": 1, "junk": 1}),
         "condition-5": (0.45, {"plain": 2, "native": 5, "glued": 1, "science": 1, "case": 1, "junk": 2})}


def style(condition: str) -> tuple[float, dict[str, int]]:
    for prefix, value in STYLE.items():
        if condition.startswith(prefix):
            return value
    raise KeyError(condition)


def instruction_langs(condition: str) -> list[str]:
    return list(LANGS) if condition == "baseline" or condition.startswith("condition-1-") else ["en", condition.split("-")[2]]


def answer(rng: random.Random, bench: str, gold: str, instr: str, condition: str, cases: dict[str, list[str]]) -> str:
    skill, weights = style(condition)
    label = gold if rng.random() < skill else rng.choice(GOLD[bench])
    shape = rng.choices(list(weights), list(weights.values()))[0]
    if shape == "case":  # an answer from the study's own extractor tests: every rule its code has
        return rng.choice(cases[bench])
    if shape == "junk":
        return rng.choice(["", "I am not sure.", "The passage does not say", "1. 2. 3.", "???", "hello"])
    if bench in ("csqa", "belebele"):
        wide = chr(ord(label) - ord("A") + ord("Ａ"))  # a full-width letter: only langdec's rules read it
        forms = {"plain": [label, label, f"{label}. the river"], "native": [f"({label.lower()})", wide], "glued": [f"答案是{label}"],
                 "science": [f"Answer: {label}", f"ANSWER{label}"], "compound": [f"{label} or {rng.choice(GOLD[bench])}"]}
        return rng.choice(forms[shape])
    if shape == "compound" and bench == "sib200":
        # "X and Y": the study's strict takes the category listed first in its order, refined calls it a hedge
        later = GOLD["sib200"][GOLD["sib200"].index(label) + 1:]
        return f"{label} and {rng.choice(later)}" if later else label
    if shape == "native" and instr in NATIVE[bench]:
        return rng.choice(NATIVE[bench][instr][label])
    if shape == "glued":
        return f"答案是{label}" if bench == "xnli" else f"这是{label}"
    if shape == "science" and bench == "sib200":
        # the study's rule A: any science/<x> is science/technology for strict; refined reads the pieces
        return f"science/{rng.choice(['physics', 'politics', 'health', 'technology', 'evolution'])}"
    if shape == "science":
        return f"没有{label}" if rng.random() < 0.5 else f"{label.capitalize()}."
    return rng.choice([label, label.capitalize(), f"{label}.", f"{label}\nbecause the text says so"])


def row_fields(bench: str, data: str, number: int) -> dict[str, str]:
    text = f"{bench} item {number} in {data}"
    return {"xnli": {"premise": f"premise of {text}", "hypothesis": f"hypothesis of {text}"}, "csqa": {"stem": f"question {text}"},
            "sib200": {"text": f"sentence {text}"}, "belebele": {"passage": f"passage {text}", "question": f"question {text}"}}[bench]


def study_inference_extractors(study: Path) -> dict:
    """The study's inference-time extractors, executed from the `run_eval_single.py` cell of its evaluate.ipynb
    (only their constants and functions; the rest of that script needs a GPU and Kaggle)."""
    notebook = json.loads((study / "expedition-tiny-aya/evaluation/scripts/evaluate.ipynb").read_text(encoding="utf-8"))
    source = next("".join(c["source"]) for c in notebook["cells"] if "".join(c["source"]).startswith("%%writefile")
                  and "run_eval_single.py" in "".join(c["source"]).splitlines()[0])
    tree = ast.parse(source.split("\n", 1)[1])
    names = {"NATIVE_LABEL_MAP", "XNLI_LABEL_RES", "SIB200_CATEGORIES", "SIB200_ALIASES", "SIB200_SCITECH_NATIVE",
             "SIB200_SCITECH_BARE_SUBCATEGORIES"}
    functions = {"extract_xnli_label", "extract_choice", "extract_sib200_category"}
    body = [n for n in tree.body if (isinstance(n, ast.Assign) and any(getattr(t, "id", "") in names for t in n.targets))
            or (isinstance(n, ast.FunctionDef) and n.name in functions)]
    namespace: dict = {"re": re}
    exec(compile(ast.Module(body=body, type_ignores=[]), "evaluate.ipynb:run_eval_single.py", "exec"), namespace)
    return {"xnli": namespace["extract_xnli_label"], "csqa": lambda t: namespace["extract_choice"](t, choices="ABCDE"),
            "belebele": lambda t: namespace["extract_choice"](t, choices="ABCD"), "sib200": namespace["extract_sib200_category"]}


def write_fixture(study: Path) -> list[Path]:
    extract = study_inference_extractors(study)
    cases: dict[str, list[str]] = {b: [] for b in BENCHES}
    for case in yaml.safe_load(CASES.read_text(encoding="utf-8")):
        cases["csqa" if case["benchmark"] == "xcsqa" else case["benchmark"]].append(case["output"])
    if FIXTURE.exists():
        shutil.rmtree(FIXTURE)
    written = []
    for condition, seed in SESSIONS:
        folder = FIXTURE / "phase3" / "conditions" / condition / f"seed{seed}"
        folder.mkdir(parents=True)
        for template in ("template1", "template2"):
            rng = random.Random(f"{condition}/{seed}/{template}")
            results: dict = {"summary": {}, "parse_failure_rates": {}}
            for data in LANGS:
                for instr in instruction_langs(condition):
                    for bench in BENCHES:
                        key = f"{template}_{bench}_data={data}_instr={instr}"
                        rows = []
                        for number, gold in enumerate(GOLD[bench]):
                            output = answer(rng, bench, gold, instr, condition, cases)
                            pred = extract[bench](output)
                            rows.append({**row_fields(bench, data, number), "template": template, "instruction_lang": instr,
                                         "raw_output": output, "pred": pred, "gold": gold, "correct": pred == gold})
                        results["summary"][f"{key}_acc"] = sum(r["correct"] for r in rows) / len(rows)
                        results["parse_failure_rates"][key] = sum(r["pred"] is None for r in rows) / len(rows)
                        results[key] = rows
            stem = f"{condition}_seed{seed}"
            # as evaluate.ipynb's save_results writes them
            for kind, body in (("summary", {"summary": results["summary"], "parse_failure_rates": results["parse_failure_rates"]}),
                               ("results", results)):
                path = folder / f"{stem}_{kind}_{template}.json"
                path.write_text(json.dumps(body, ensure_ascii=False, indent=2), encoding="utf-8")
                if kind == "results":
                    written.append(path)
    # the refined summaries, by the study's own script
    subprocess.run([sys.executable, str(study / "expedition-tiny-aya/evaluation/scripts/reparse_results.py"), *map(str, written),
                    "--write-reparsed-summary"], check=True, stdout=subprocess.DEVNULL)
    add_stray_files()
    return written


def add_stray_files() -> None:
    """The slip the study documented ("known stray seed-mismatched files"): a session's files copied under another
    seed's folder, canonical twins present. The summaries are read by its summary-based scripts (which tell the seed
    from the name and keep the twin); the results file by its three per-item breakdown scripts, which take the seed
    from the folder and so count it as one more seed-42 file."""
    stray = FIXTURE / "phase3/conditions/condition-2-ur-5k"
    for kind in ("summary", "summary_reparsed", "results"):
        name = f"condition-2-ur-5k_seed123_{kind}_template1.json"
        shutil.copy(stray / "seed123" / name, stray / "seed42" / name)


HUB_STAND_IN = '''
"""Answers the study scripts' Hugging Face calls from local folders (LOCAL_HUB_ROOTS: prefix=folder;...)."""
import os
from pathlib import Path


def _roots():
    for part in os.environ["LOCAL_HUB_ROOTS"].split(";"):
        prefix, _, folder = part.partition("=")
        yield prefix, Path(folder)


def hf_hub_download(repo_id=None, filename=None, repo_type=None, **_):
    for prefix, folder in _roots():
        if filename.startswith(prefix):
            path = folder / filename[len(prefix):].lstrip("/")
            if path.exists():
                return str(path)
    raise FileNotFoundError(filename)


class HfApi:
    def list_repo_files(self, repo_id=None, repo_type=None, **_):
        out = []
        for prefix, folder in _roots():
            out += [f"{prefix.rstrip('/')}/{p.relative_to(folder).as_posix()}".lstrip("/") for p in sorted(folder.rglob("*")) if p.is_file()]
        return out
'''


def run_study_scripts(study: Path) -> None:
    """Every output file of the study's analysis scripts on the fixture, into EXPECTED."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = tmp / "expedition-tiny-aya"
        shutil.copytree(study / "expedition-tiny-aya", tree, ignore=shutil.ignore_patterns("*.json", "*.png", "*.pdf"))
        hub = tmp / "hub"
        (hub / "huggingface_hub").mkdir(parents=True)
        (hub / "huggingface_hub" / "__init__.py").write_text(HUB_STAND_IN)
        out = tmp / "out"
        out.mkdir()
        scripts = tree / "evaluation" / "scripts"
        figures = tree / "analysis" / "scripts"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hub), str(scripts), str(figures)]),
               "PHASE3_SNAPSHOT_ROOT": str(FIXTURE / "phase3" / "conditions"), "PHASE3_OUT_DIR": str(out),
               "PHASE3_ANALYSIS_TABLES_DIR": str(out), "MPLBACKEND": "Agg",
               "LOCAL_HUB_ROOTS": f"phase3/analysis/refined-tables={out};phase3/conditions={FIXTURE / 'phase3' / 'conditions'}"}

        def run(script: Path, *args: str) -> None:
            subprocess.run([sys.executable, str(script), *args], check=True, cwd=tmp, env=env, stdout=subprocess.DEVNULL)

        for name in ("build_comparison.py", "build_vs_baseline.py", "build_framework_comparison.py", "build_significance.py"):
            run(scripts / name)
        run(scripts / "build_correct_via_constant.py", "--output", str(out / "correct-via-constant-rates.tsv"))
        run(scripts / "build_xnli_label_bias.py", "--output", str(out / "xnli-label-distributions.tsv"))
        run(scripts / "build_sib200_category_breakdown.py", "--output", str(out / "sib200-category-accuracy.tsv"))
        run(figures / "build_phase3_tables.py")
        for fig in ("fig01_extractor_slopegraph", "fig02_cell_scatter", "fig03_regression_concentration",
                    "fig04_signflip_slopegraph", "fig05_cond5_rehabilitated"):
            run(figures / f"{fig}.py", "--tables-dir", str(out))
        if EXPECTED.exists():
            shutil.rmtree(EXPECTED)
        EXPECTED.mkdir()
        for path in sorted(out.iterdir()):
            shutil.copy(path, EXPECTED / path.name)
        shutil.copy(tree / "analysis" / "phase-3" / "tables.tex", EXPECTED / "tables.tex")
        shutil.copy(tree / "analysis" / "figures-phase3" / "fig04_signflip_appendix.tsv", EXPECTED / "fig04_signflip_appendix.tsv")
        figures_made = sorted(p.name for p in (tree / "analysis" / "figures-phase3").glob("*.png"))
        (EXPECTED / "figures.txt").write_text("".join(f"{name}\n" for name in figures_made))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, type=Path, help="a checkout of legesher/research")
    parser.add_argument("--expected-only", action="store_true",
                        help="keep the fixture's answers (the reparsed summaries carry a time stamp), add the stray files, "
                             "and only re-run the study's scripts")
    args = parser.parse_args()
    if args.expected_only:
        add_stray_files()
    else:
        written = write_fixture(args.study)
        print(f"fixture: {len(written)} result files under {FIXTURE}")
    run_study_scripts(args.study)
    print(f"expected: {len(list(EXPECTED.iterdir()))} files under {EXPECTED}")


if __name__ == "__main__":
    main()
