"""The study's registered model: one version per (phase, condition, lang, tier, seed).

Versions carry the tags a reviewer needs to trust a number. A second version for
the same key is refused unless it explicitly supersedes the first, which is
recorded on both. Promotion follows a policy written as data in registry/.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from langdec.core.config import Job, Profile, condition
from langdec.core.digests import file_sha256
from langdec.core.errors import LangdecError
from langdec.core.paths import project_root
from langdec.data import kinds
from langdec.models import serving
from langdec.models.loading import model_identity
from langdec.tracking import logged_models


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def version_key(phase: str, job: Job) -> dict[str, str]:
    key = {
        "phase": phase,
        "condition": job.condition,
        "lang": job.lang or "en",
        "tier": job.tier,
        "seed": str(job.seed),
    }
    if job.arm:
        key["arm"] = job.arm
    return key


def _ensure_model(name: str) -> None:
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name,
                description="Language Decoded adapters (LoRA on Tiny Aya), one version per phase/condition/lang/tier/seed",
            )
        except MlflowException:
            client.get_registered_model(name)  # created meanwhile by another worker; anything else re-raises


def live_versions(name: str, key: dict[str, str]):
    from mlflow.exceptions import MlflowException

    clauses = [f"name = '{name}'"] + [f"tags.`{k}` = '{v}'" for k, v in key.items()]
    try:
        found = _client().search_model_versions(" and ".join(clauses))
    except MlflowException:
        return []
    # a published adapter and a re-trained one of the same cell, or two arms of it, are different versions, never rivals
    origin = key.get("origin", "langdec")
    return [
        v
        for v in found
        if v.tags.get("superseded_by") is None
        and v.tags.get("origin", "langdec") == origin
        and v.tags.get("arm") == key.get("arm")
    ]


def live_version(name: str, phase: str, job: Job):
    """The registered version that holds this cell (its arm included) now, or None."""
    found = sorted(live_versions(name, version_key(phase, job)), key=lambda v: int(v.version))
    return found[-1] if found else None


def ensure_can_register(name: str, phase: str, job: Job, *, supersede: bool) -> None:
    existing = live_versions(name, version_key(phase, job))
    if existing and not supersede:
        v = existing[0]
        raise LangdecError(
            f"{name} version {v.version} already holds {phase} {job.run_name} (run {v.run_id}); "
            "pass --supersede to register a new version that replaces it (recorded on both versions)"
        )


def register(
    name: str,
    run_id: str,
    source: str,
    *,
    phase: str,
    job: Job,
    profile: Profile,
    data_digest: str,
    check_status: str,
    tags: dict[str, str],
    supersede: bool,
    run_key: str | None = None,
) -> str:
    """Register a training run's adapter as the cell's version; returns the version that holds the cell.

    Idempotent by the training run's key: a live version of the cell with the same key is returned as it is (the
    same adapter config on the same data, trained twice by two machines). On one machine the registered model's
    lock (`model_lock`, which promotion holds too) orders registrations; across machines `_converge` does."""
    key = version_key(phase, job)
    with model_lock(name, f"registering {name} {job.run_name}"):
        return _register(
            name,
            run_id,
            source,
            key,
            phase=phase,
            job=job,
            profile=profile,
            data_digest=data_digest,
            check_status=check_status,
            tags=tags,
            supersede=supersede,
            run_key=run_key,
        )


def _register(
    name: str,
    run_id: str,
    source: str,
    key: dict[str, str],
    *,
    phase: str,
    job: Job,
    profile: Profile,
    data_digest: str,
    check_status: str,
    tags: dict[str, str],
    supersede: bool,
    run_key: str | None,
) -> str:
    import mlflow

    _ensure_model(name)
    previous = live_versions(name, key)
    same = sorted((v for v in previous if run_key and v.tags.get("run_key") == run_key), key=lambda v: int(v.version))
    if same:
        return _duplicate_of(same[0], run_id)
    if previous and not supersede:
        ensure_can_register(name, phase, job, supersede=False)
    # read (and validated) before anything is written; a concurrent registration may still need them (_converge)
    aliases = policy_aliases() if previous or supersede else []
    all_tags = {
        **key,
        "run_name": job.run_name,
        "corpus": profile.corpus.source,
        "base_model": profile.model.id,
        **model_identity(profile.model),
        "transpiler_version": tags.get("transpiler_version", "n/a"),
        "data_digest": data_digest,
        "data_check_status": check_status,
        "evaluation_status": "not-evaluated",
        "profile": profile.name,
        **({"run_key": run_key} if run_key else {}),
    }
    all_tags.update(kinds.get(condition(job.condition).data).registry_tags(profile))
    client = _client()
    # the run's logged model (an MLflow Model); a run from before logged models registers its `adapter` artifact
    model_id = logged_models.model_id_in(source) or logged_models.model_of_run(run_id)
    if model_id:
        source = f"models:/{model_id}"
    else:
        source = mlflow.get_run(run_id).info.artifact_uri.rstrip("/") + "/adapter"
    version = client.create_model_version(
        name, source=source, run_id=run_id, tags=all_tags, description=f"{phase} {job.run_name}", model_id=model_id
    )
    if model_id:
        logged_models.link_version(model_id, name, str(version.version))
    return _converge(name, key, version, run_id, run_key, supersede=supersede, aliases=aliases, job=job, phase=phase)


def _converge(
    name: str,
    key: dict[str, str],
    mine,
    run_id: str,
    run_key: str | None,
    *,
    supersede: bool,
    aliases: list[str],
    job: Job,
    phase: str,
) -> str:
    """After creating `mine`, settle the cell with what other machines registered meanwhile, so exactly one
    version stays live whatever ran twice. Version numbers only grow, so any two registrations of the cell see
    each other's version at least from the later one; each process acts only on versions lower than its own:
    - a lower live version with the same run key: the same adapter registered first; `mine` is removed;
    - a lower live version without `supersede`: the cell was taken meanwhile; `mine` is removed and refused;
    - with `supersede`: every lower live version is superseded by `mine` (the highest supersede wins).
    Versions higher than `mine` settle themselves against it the same way."""
    client = _client()
    number = int(mine.version)
    lower = sorted((v for v in live_versions(name, key) if int(v.version) < number), key=lambda v: int(v.version))
    same = [v for v in lower if run_key and v.tags.get("run_key") == run_key]
    if same:
        _delete(name, mine)
        return _duplicate_of(same[0], run_id)
    if lower and not supersede:
        _delete(name, mine)
        v = lower[0]
        raise LangdecError(
            f"{name} version {v.version} was registered for {phase} {job.run_name} (run {v.run_id}) while this "
            f"run trained; pass --supersede to register a new version that replaces it (recorded on both versions)"
        )
    for old in lower:
        client.set_model_version_tag(name, old.version, "superseded_by", str(mine.version))
        client.set_model_version_tag(name, mine.version, "supersedes", str(old.version))
        withdrawn = withdraw(name, old.version, aliases)  # promotion is the policy's to grant again, to the new version
        if withdrawn:
            client.set_model_version_tag(name, mine.version, "withdrawn_from_superseded", ",".join(withdrawn))
    return str(mine.version)


def _delete(name: str, version) -> None:
    """Remove a version this process created and found redundant, and its name from its logged model."""
    _client().delete_model_version(name, str(version.version))
    model_id = logged_models.model_id_in(version.source)
    if model_id:
        logged_models.link_version(model_id, name, str(version.version), linked=False)


def _duplicate_of(version, run_id: str) -> str:
    """The version registered first for the same run key holds the cell; this run says whose duplicate it is."""
    if version.run_id != run_id:
        _client().set_tag(run_id, "langdec.duplicate_of", version.run_id)
    return str(version.version)


def policy_aliases() -> list[str]:
    return sorted(
        spec["alias"] for spec in (_read_policy(p) for p in sorted((project_root() / "registry").glob("*.yaml")))
    )


def withdraw(name: str, version: str, aliases: list[str] | None = None) -> list[str]:
    """Take a version's promotions away: its `<alias>-<cell>` aliases and `<alias>=true` tags. Returns what it held."""
    client = _client()
    aliases = aliases if aliases is not None else policy_aliases()
    held = []
    for alias_name, holder in (client.get_registered_model(name).aliases or {}).items():
        if str(holder) == str(version) and any(alias_name == a or alias_name.startswith(f"{a}-") for a in aliases):
            client.delete_registered_model_alias(name, alias_name)
            held.append(alias_name)
    tags = client.get_model_version(name, str(version)).tags
    for alias in aliases:
        if tags.get(alias) == "true":
            client.delete_model_version_tag(name, str(version), alias)
            held.append(f"{alias}=true")
    return held


def version_for_run(name: str, run_id: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        found = _client().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return str(found[0].version) if found else None


def record_evaluation(
    name: str, version: str, benchmarks: list[str], extractor_versions: dict[str, str], cells: int
) -> None:
    client = _client()
    client.set_model_version_tag(name, version, "evaluation_status", "evaluated")
    client.set_model_version_tag(name, version, "evaluated_benchmarks", ",".join(sorted(benchmarks)))
    client.set_model_version_tag(name, version, "extractor_versions", json.dumps(extractor_versions, sort_keys=True))
    client.set_model_version_tag(name, version, "evaluated_cells", str(cells))


def register_published(
    name: str,
    eval_run_id: str,
    adapter,
    *,
    job: Job,
    profile: Profile,
    benchmarks: list[str],
    extractor_versions: dict[str, str],
    cells: int,
) -> str:
    """The study's own adapter as a version of the registered model, tagged with its origin and folder; its
    weights are the eval run's `adapter` artifact. The same weights are registered once."""
    import mlflow

    key = {**version_key(adapter.phase, job), "origin": "published"}
    with model_lock(name, f"registering {adapter.folder}"):
        _ensure_model(name)
        client = _client()
        for v in live_versions(name, key):
            if v.tags.get("adapter_sha256") == adapter.digest:
                return str(v.version)
        source = mlflow.get_run(eval_run_id).info.artifact_uri.rstrip("/") + "/adapter"
        tags = {
            **key,
            **adapter.tags(),
            "run_name": f"{job.run_name}@published",
            "base_model": profile.model.id,
            "profile": profile.name,
            "data_check_status": "published",
        }
        version = client.create_model_version(
            name,
            source=source,
            run_id=eval_run_id,
            tags=tags,
            description=f"the study's published adapter {adapter.folder} ({adapter.source})",
        )
        record_evaluation(name, str(version.version), benchmarks, extractor_versions, cells)
        return str(version.version)


# --------------------------------------------------------------------------- promotion
@dataclass
class Policy:
    name: str
    alias: str
    rules: dict[str, Any]
    path: Path


# A policy file's schema: every rule, its type, and what it checks (the error for an unknown key lists these).
POLICY_RULES: dict[str, tuple[type, str]] = {
    "phase": (str, "the version's phase tag equals this"),
    "data_checks_passed": (bool, "the data-check run the training relied on passed"),
    "benchmarks": (list, "every named benchmark was evaluated"),
    "current_extractor": (str, "scored with this extractor's current version"),
    "min_seeds": (int, "at least this many seeds of the same cell pass"),
}
POLICY_KEYS = ("alias", "rules")


def _read_policy(path: Path) -> dict[str, Any]:
    """A policy file, validated against its schema; every problem names the file and the key."""
    from langdec.evaluation.benchmarks import benchmark_names
    from langdec.evaluation.extractors import extractors

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LangdecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    if not isinstance(spec, dict) or not spec:
        raise LangdecError(
            f"{path}: a policy is a mapping with keys {', '.join(POLICY_KEYS)}; the file is empty or not a mapping"
        )
    unknown = sorted(set(map(str, spec)) - set(POLICY_KEYS))
    if unknown:
        raise LangdecError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(POLICY_KEYS)}")
    if not isinstance(spec.get("alias"), str) or not spec["alias"].strip():
        raise LangdecError(f"{path}: `alias` must be a non-empty string (the alias the policy sets, e.g. paper)")
    rules = spec.get("rules")
    if not isinstance(rules, dict) or not rules:
        raise LangdecError(f"{path}: `rules` must be a non-empty mapping; valid rules: {', '.join(POLICY_RULES)}")
    for key, value in rules.items():
        if key not in POLICY_RULES:
            raise LangdecError(f"{path}: unknown rule {key!r}; valid rules: {', '.join(POLICY_RULES)}")
        kind, _ = POLICY_RULES[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise LangdecError(f"{path}: rules.{key} must be a {kind.__name__}, got {value!r}")
    for bench in rules.get("benchmarks", []):
        if bench not in benchmark_names():
            raise LangdecError(
                f"{path}: rules.benchmarks names unknown benchmark {bench!r}; valid: {', '.join(benchmark_names())}"
            )
    if "current_extractor" in rules and rules["current_extractor"] not in extractors():
        raise LangdecError(
            f"{path}: rules.current_extractor {rules['current_extractor']!r} is not an extractor; "
            f"valid: {', '.join(sorted(extractors()))}"
        )
    if rules.get("min_seeds", 1) < 1:
        raise LangdecError(f"{path}: rules.min_seeds must be at least 1")
    return spec


def load_policy(alias: str) -> Policy:
    folder = project_root() / "registry"
    specs = {path: _read_policy(path) for path in sorted(folder.glob("*.yaml"))}
    for path, spec in specs.items():
        if spec["alias"] == alias:
            return Policy(path.stem, alias, spec["rules"], path)
    raise LangdecError(
        f"no promotion policy for alias {alias!r} in {folder}; policies exist for: "
        f"{', '.join(sorted(s['alias'] for s in specs.values())) or '(none)'}"
    )


def check_policy(policy: Policy, version) -> list[str]:
    """Reasons the version fails the policy; empty means it may be promoted."""
    from langdec.evaluation.extractors import get as get_extractor

    reasons = []
    tags = version.tags
    rules = policy.rules
    if "phase" in rules and tags.get("phase") != rules["phase"]:
        reasons.append(f"phase is {tags.get('phase')!r}; this alias is for {rules['phase']!r} versions only")
    if rules.get("data_checks_passed") and tags.get("data_check_status") != "passed":
        reasons.append(
            f"data checks are {tags.get('data_check_status', 'missing')!r}, not 'passed': run `langdec check` for its "
            "condition and re-train on data that passes"
        )
    if tags.get("superseded_by"):
        reasons.append(f"superseded by version {tags['superseded_by']}: promote that one instead")
    required = rules.get("benchmarks") or []
    evaluated = set(filter(None, tags.get("evaluated_benchmarks", "").split(",")))
    missing = sorted(set(required) - evaluated)
    if missing:
        reasons.append(f"not evaluated on {', '.join(missing)}: run `langdec evaluate` for its cell")
    extractor = rules.get("current_extractor")
    if extractor:
        recorded = json.loads(tags.get("extractor_versions", "{}") or "{}")
        current = get_extractor(extractor).version
        if tags.get("evaluation_status") != "evaluated":
            reasons.append("never evaluated; run `langdec evaluate` for its condition, language, tier and seed")
        elif recorded.get(extractor) != current:
            reasons.append(
                f"not scored with the current {extractor} extractor ({current}); recorded {recorded.get(extractor)!r}. "
                "Run `langdec reparse RUN_ID --extractor " + extractor + "` on its evaluation run"
            )
    return reasons


def alias_for(alias: str, version) -> str:
    """The MLflow alias a promoted version gets: one per adapter cell (an alias names one version), e.g.
    paper-cond2-zh-5k-s42; load it with models:/<registered model>@paper-cond2-zh-5k-s42."""
    return f"{alias}-{version.tags.get('run_name', version.version)}".replace("@", "-")


@dataclass
class Promotion:
    promoted: dict[str, str]  # version -> alias it holds now
    refused: dict[str, list[str]]  # version -> reasons, each with its fix
    withdrawn: dict[str, list[str]]  # version -> promotions taken away (it no longer passes)


def model_lock(name: str, what: str):
    """The one lock of a registered model: registration (and superseding) and promotion hold it."""
    from langdec.core.locks import hold

    return hold(f"registry-{name}", what)


def promote(name: str, alias: str, *, versions: list[str] | None = None) -> Promotion:
    """Set `alias` on every (or the given) version that passes the policy, and take it from versions that
    no longer pass (a superseded one, say), so aliases, tags and the manifest always agree. Holds the model's
    lock throughout; its writes (tag, then alias, then withdrawals) are all idempotent, so a promotion that
    was interrupted is completed by running it again."""
    load_policy(alias)  # a misspelled policy fails before the wait
    with model_lock(name, f"promoting {name} to {alias}"):
        return _promote(name, alias, versions)


def _promote(name: str, alias: str, versions: list[str] | None) -> Promotion:
    policy = load_policy(alias)
    client = _client()
    candidates = client.search_model_versions(f"name = '{name}'")
    if versions:
        missing = sorted(set(versions) - {v.version for v in candidates}, key=lambda v: (len(v), v))
        if missing:
            existing = sorted((v.version for v in candidates), key=int)
            raise LangdecError(
                f"{name} has no version {', '.join(missing)}; its versions are {', '.join(existing) or '(none)'}"
            )
        candidates = [v for v in candidates if v.version in set(versions)]
    refused: dict[str, list[str]] = {}
    accepted = []
    for version in candidates:
        reasons = check_policy(policy, version)
        if reasons:
            refused[version.version] = reasons
        else:
            accepted.append(version)
    min_seeds = policy.rules.get("min_seeds")
    if min_seeds:
        groups: dict[tuple, set[str]] = {}
        for v in accepted:
            groups.setdefault(_cell(v), set()).add(v.tags.get("seed"))
        kept = []
        for v in accepted:
            seeds = groups[_cell(v)]
            if len(seeds) < min_seeds:
                refused[v.version] = [
                    f"only {len(seeds)} seed(s) of this cell pass; the policy requires {min_seeds}: train and "
                    "evaluate the other seeds"
                ]
            else:
                kept.append(v)
        accepted = kept
    promoted = {}
    for v in accepted:
        # MLflow aliases name one version each; keep one alias per adapter cell so
        # every promoted version is addressable, plus a version tag for filtering.
        client.set_model_version_tag(name, v.version, alias, "true")
        client.set_registered_model_alias(name, alias_for(alias, v), v.version)
        promoted[v.version] = alias_for(alias, v)
    withdrawn = {}
    for version in refused:
        taken = withdraw(name, version, [alias])
        if taken:
            withdrawn[version] = taken
    return Promotion(promoted, refused, withdrawn)


def _cell(v) -> tuple:
    return (
        v.tags.get("phase"),
        v.tags.get("condition"),
        v.tags.get("lang"),
        v.tags.get("tier"),
        v.tags.get("arm"),
        v.tags.get("origin"),
    )


# --------------------------------------------------------------------------- manifest and export
def published_path(tags: dict[str, str]) -> str:
    """The study's folder layout: phase 3 `tiny-aya-base/condition-2-zh-5k-seed42/`, phase 2 flat `condition-2-zh-5k/`;
    each condition's name from its `published_name` (condition-1-en-5k, condition-3-zh-5k-native-code, ...)."""
    stem = condition(tags["condition"]).published_stem(
        tags.get("lang"), tags["tier"], tags.get("translation_model", "")
    )
    if tags.get("phase") == "phase-2":
        return f"{stem}/"
    base = tags.get("base_model", "model").rstrip("/").split("/")[-1].lower()
    arm = f"-{tags['arm']}" if tags.get("arm") else ""
    return f"{base}/{stem}-seed{tags['seed']}{arm}/"


def selected_versions(name: str, alias: str | None):
    versions = _client().search_model_versions(f"name = '{name}'")
    live = [v for v in versions if not v.tags.get("superseded_by")]
    if alias:
        live = [v for v in live if v.tags.get(alias) == "true"]
    return sorted(live, key=lambda v: int(v.version))


def build_manifest(name: str, alias: str | None, adapters: dict[str, Path]) -> dict[str, Any]:
    """path -> phase, corpus, condition, version and digests, generated from the registry only."""
    out: dict[str, Any] = {}
    for v in selected_versions(name, alias):
        path = published_path(v.tags)
        if path in out:
            raise LangdecError(
                f"two live versions map to {path} ({out[path]['version']} and {v.version}); supersede one of them"
            )
        folder = adapters.get(str(v.version))
        weights = folder / "adapter_model.safetensors" if folder else None
        out[path] = {
            "phase": v.tags.get("phase"),
            "corpus": v.tags.get("corpus"),
            "condition": v.tags.get("condition"),
            "lang": v.tags.get("lang"),
            "tier": v.tags.get("tier"),
            "seed": v.tags.get("seed"),
            "run_name": v.tags.get("run_name"),
            "origin": v.tags.get("origin", "langdec"),
            "registered_model": name,
            "version": str(v.version),
            "run_id": v.run_id,
            "base_model": v.tags.get("base_model"),
            "aliases": sorted(a for a in (v.aliases or [])),
            "digests": {
                "data": v.tags.get("data_digest"),
                "transpiler": v.tags.get("transpiler_version"),
                "adapter_sha256": file_sha256(weights) if weights and weights.exists() else None,
            },
            "evaluation": {
                "status": v.tags.get("evaluation_status"),
                "benchmarks": v.tags.get("evaluated_benchmarks", ""),
                "extractors": json.loads(v.tags.get("extractor_versions", "{}") or "{}"),
            },
        }
        if folder:
            problems = serving.vllm_problems(folder)
            out[path]["vllm"] = {"loads": not problems, "problems": problems}
    return out


def serving_markdown(manifest: dict[str, Any], written: Path, dest: Path) -> str:
    """How to serve the exported adapters with vLLM (paths as they will be under `dest`; configs read from
    `written`, where the export is being assembled), or why an adapter cannot be."""
    ok = {path.rstrip("/").split("/")[-1]: path for path, m in manifest.items() if m.get("vllm", {}).get("loads")}
    ranks = [int(json.loads((written / path / "adapter_config.json").read_text()).get("r", 8)) for path in ok.values()]
    lines = [
        "# Serving these adapters",
        "",
        "Evaluate any of them through an OpenAI-compatible server (`langdec evaluate ... --set evaluation.backend=openai "
        "--set evaluation.base_url=http://HOST:8000/v1 --set evaluation.adapter_model=NAME`):",
        "",
    ]
    bases = sorted({m["base_model"] for m in manifest.values() if m.get("base_model")})
    if ok:
        modules = {name: dest / path.rstrip("/") for name, path in ok.items()}
        lines += ["```", serving.vllm_command(bases[0] if bases else "BASE_MODEL", modules, ranks), "```", ""]
    refused = {path: m["vllm"]["problems"] for path, m in manifest.items() if m.get("vllm") and not m["vllm"]["loads"]}
    for path, problems in sorted(refused.items()):
        lines.append(f"- `{path}` is not servable by vLLM: {'; '.join(problems)}")
    return "\n".join(lines).rstrip() + "\n"


def manifest_markdown(manifest: dict[str, Any], name: str, alias: str | None) -> str:
    lines = [
        f"# MANIFEST: {name}" + (f" (alias `{alias}`)" if alias else ""),
        "",
        "Generated by `langdec manifest` from the MLflow model registry; do not edit by hand.",
        "",
        "| path | phase | condition | lang | tier | seed | version | data digest | adapter sha256 | evaluated |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, m in sorted(manifest.items()):
        sha = (m["digests"]["adapter_sha256"] or "")[:16]
        lines.append(
            f"| `{path}` | {m['phase']} | {m['condition']} | {m['lang']} | {m['tier']} | {m['seed']} | {m['version']} | "
            f"{m['digests']['data']} | {sha} | {m['evaluation']['benchmarks']} |"
        )
    return "\n".join(lines) + "\n"


def export(
    name: str,
    alias: str | None,
    dest: Path,
    *,
    replace: bool = False,
    extras: Callable[[Path, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Adapter folders in the published layout plus MANIFEST.md and manifest.json, written atomically.

    A non-empty `dest` is refused unless `replace` (the CLI's --force). `extras(folder, manifest)` writes more
    files into the export while it is assembled (the CLI: a model card in each adapter folder)."""
    import mlflow

    from langdec.core.atomic import atomic_dir, check_output, user_modes

    check_output(dest, replace=replace, flag="DEST")  # before any download; never the store, the home or the checkout
    versions = selected_versions(name, alias)
    if not versions:
        raise LangdecError(
            f"no live versions of {name}"
            + (f" carry the alias {alias!r}; run `langdec promote --alias {alias}` first" if alias else "")
        )
    with atomic_dir(dest, replace=replace) as tmp:
        adapters: dict[str, Path] = {}
        for v in versions:
            target = tmp / published_path(v.tags)
            target.parent.mkdir(parents=True, exist_ok=True)
            # a run's `adapter` artifact downloads into a folder of that name, a logged model into the folder given:
            # either way the folder returned takes its published name
            staging = tmp / f".download-{v.version}"
            Path(mlflow.artifacts.download_artifacts(artifact_uri=v.source, dst_path=str(staging))).rename(target)
            shutil.rmtree(staging, ignore_errors=True)
            adapters[str(v.version)] = target
        manifest = build_manifest(name, alias, adapters)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        (tmp / "MANIFEST.md").write_text(manifest_markdown(manifest, name, alias))
        (tmp / "SERVING.md").write_text(serving_markdown(manifest, tmp, dest.resolve()))
        if extras is not None:
            extras(tmp, manifest)
        user_modes(tmp)  # weights stored 0600 by an older langdec are exported with the usual mode
    return manifest
