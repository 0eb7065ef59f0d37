"""A model card (README.md, the Hugging Face convention) for every exported adapter: front matter a hub reads
(base_model, library_name: peft, license, datasets, tags, model-index with the version's template scores) and a
short body saying what the adapter is, how to load it and where its numbers come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from langdec.core.errors import LangdecError
from langdec.core.paths import project_root
from langdec.core.schema import read_yaml
from langdec.evaluation.stage import EVAL_STAGE, template_scores

SETTINGS = "registry/model_card/card.yaml"  # beside the promotion policies, not one of them


def settings() -> dict[str, Any]:
    return read_yaml(project_root() / SETTINGS)


def evaluation_metrics(run_id: str | None) -> tuple[str | None, dict[str, float]]:
    """The newest finished evaluation of the adapter trained (or, for a published adapter, evaluated) by `run_id`:
    (its run id, its metrics)."""
    from mlflow.tracking import MlflowClient

    if not run_id:
        return None, {}
    client = MlflowClient()
    run = client.get_run(run_id)
    if run.data.tags.get("langdec.stage") == EVAL_STAGE:
        return run_id, run.data.metrics
    found = client.search_runs(  # an adapter is evaluated in its training run's experiment
        [run.info.experiment_id],
        f"tags.adapter_run = '{run_id}' and tags.`langdec.stage` = '{EVAL_STAGE}' and attributes.status = 'FINISHED'",
        order_by=["attributes.end_time DESC"],
        max_results=1,
    )
    return (found[0].info.run_id, found[0].data.metrics) if found else (None, {})


def model_index(name: str, scores: dict[str, float], extractors: list[str], eval_run: str | None) -> list[dict]:
    """Hugging Face's model-index: one result per benchmark, each template under each extractor."""
    results: dict[str, list[dict]] = {}
    for key, value in sorted(scores.items()):
        template, bench, extractor = key.split(".")
        if extractor in extractors:
            results.setdefault(bench, []).append(
                {"type": "accuracy", "name": f"{template} accuracy ({extractor} extractor)", "value": round(value, 4)}
            )
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": "text-generation", "name": "Text Generation"},
                    "dataset": _dataset(bench),
                    "metrics": metrics,
                    **({"source": {"name": f"langdec evaluation run {eval_run}"}} if eval_run else {}),
                }
                for bench, metrics in sorted(results.items())
            ],
        }
    ]


def _dataset(bench: str) -> dict[str, str]:
    """The benchmark as the hub names it (its `hub:` id, split), for the model-index."""
    from langdec.evaluation import benchmarks

    try:
        hub = benchmarks.get(bench).hub
    except LangdecError:
        hub = None
    if hub is None:
        return {"name": bench, "type": bench}
    return {"name": bench, "type": hub.id, "split": hub.split}


class _NoAliases(yaml.SafeDumper):
    """Every result's `source` written out in full: a hub reads the front matter, anchors and all, but people too."""

    def ignore_aliases(self, data) -> bool:
        return True


def card(path: str, entry: dict[str, Any], conf: dict[str, Any]) -> str:
    """The README.md of the exported folder `path` (a manifest entry's key)."""
    base = entry.get("base_model") or "unknown"
    hub = conf.get("hub_ids", {}).get(base, base)  # the base model's Hugging Face id where langdec names it otherwise
    eval_run, metrics = evaluation_metrics(entry.get("run_id"))
    scores = template_scores(metrics)
    corpus = entry.get("corpus") or ""
    name = path.rstrip("/").split("/")[-1]
    tags = [*conf.get("tags", []), f"condition-{entry.get('condition')}", str(entry.get("phase")), str(entry["tier"])]
    front: dict[str, Any] = {
        "base_model": hub,
        "library_name": "peft",
        "license": conf.get("licenses", {}).get(base, conf.get("default_license", "other")),
        "pipeline_tag": "text-generation",
        "language": sorted({"en", entry.get("lang") or "en"}),
        "tags": tags,
    }
    if corpus.startswith("hf:"):
        front["datasets"] = [corpus[3:].split(":")[0]]
    if scores:
        front["model-index"] = model_index(name, scores, conf.get("extractors", ["refined"]), eval_run)
    body = [
        f"# {name}",
        "",
        f"A LoRA adapter of the Language Decoded study on `{base}`: condition {entry.get('condition')}, language "
        f"{entry.get('lang')}, tier {entry.get('tier')}, seed {entry.get('seed')} ({entry.get('phase')}). Registered as "
        f"version {entry.get('version')} of `{entry.get('registered_model')}`; trained by MLflow run "
        f"`{entry.get('run_id')}` on data digest `{entry['digests'].get('data')}`.",
        "",
        *(
            [
                f"It was trained on `{base}`, which langdec converts from a file into a transformers folder; "
                f"`{hub}` is the model that file was made from, not the same weights. Load the base as langdec "
                "does (`langdec.models.loading.load_base_model`) for the numbers below.",
                "",
            ]
            if hub != base
            else []
        ),
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM",
        f"base = AutoModelForCausalLM.from_pretrained({hub!r})",
        f"model = PeftModel.from_pretrained(base, {name!r})",
        "```",
        "",
        "In the MLflow store it came from: "
        f"`mlflow.pyfunc.load_model('models:/{entry.get('registered_model')}/{entry.get('version')}')`. "
        "Serving with vLLM: SERVING.md at the top of this export.",
        "",
    ]
    if scores:
        body += [
            "Scores: mean accuracy over data and instruction languages, per template and extractor, from evaluation "
            f"run `{eval_run}`.",
            "",
        ]
    else:
        body += ["Not evaluated yet: no model-index.", ""]
    head = yaml.dump(front, Dumper=_NoAliases, sort_keys=False, allow_unicode=True)
    return "---\n" + head + "---\n\n" + "\n".join(body)


def write_cards(root: Path, manifest: dict[str, Any]) -> None:
    """README.md in each exported adapter folder under `root` (export's assembling folder)."""
    conf = settings()
    for path, entry in manifest.items():
        (root / path / "README.md").write_text(card(path, entry, conf), encoding="utf-8")
