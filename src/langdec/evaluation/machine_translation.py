"""Machine-translated test data: a benchmark's items in one language, translated into another by the same
backends condition 5 uses (`translation.*` in the profile), so a human-translated split can be scored beside
its machine-translated copy and the gap reported. Machine-translated test sets overestimate ability in
low-resource languages; the gap says by how much for this model.

The text goes through the condition-5 request as `string` units (placeholders and line breaks kept), with
its retries and its answer cache, so a copy is translated once per backend, model and prompt version."""

from __future__ import annotations

from typing import TYPE_CHECKING

from langdec.core.errors import LangdecError
from langdec.data.translation import stage as translation
from langdec.data.translation.units import Unit
from langdec.evaluation import benchmarks
from langdec.evaluation.benchmarks import Item

if TYPE_CHECKING:
    from langdec.core.config import Profile


def items(
    name: str,
    lang: str,
    profile: Profile,
    *,
    source: str,
    limit: int | None = None,
    slice: str = "stratified",
    seed: int = benchmarks.SLICE_SEED,
) -> list[Item]:
    """The `translate:` variant `name` in `lang`: its source language's items with their fields translated; with
    `limit`, the source language's slice (benchmarks.slice_items), so a copy is scored on the items its original is."""
    bench = benchmarks.get(name)
    spec = bench.translate
    if spec is None:
        raise LangdecError(f"{name} is not a machine-translated benchmark (it has no translate:)")
    originals = benchmarks.load(bench.family, spec.source_language, source=source, limit=limit, slice=slice, seed=seed)
    wanted = [(i, f) for i, item in enumerate(originals) for f in spec.fields]
    units = [Unit(f"s{k}", "string", originals[i].fields[f]) for k, (i, f) in enumerate(wanted)]
    cfg = profile.translation
    with translation.open_backend(cfg, profile) as backend:
        answers = translation.translator(backend, lang, cfg).translate_units(units)
    missing = [u.key for u in units if u.key not in answers]
    if missing:
        raise LangdecError(
            f"{name} ({lang}): the translation backend left {len(missing)} of {len(units)} texts "
            f"untranslated ({cfg.backend}, {cfg.model}); try again or use another model"
        )
    out = [Item(item.id, dict(item.fields), item.label, item.options) for item in originals]
    for k, (i, f) in enumerate(wanted):
        out[i].fields[f] = answers[f"s{k}"]
    return out
