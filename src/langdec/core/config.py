"""Experiment files (profiles, conditions, ladders) mapped onto typed, validated dataclasses.

Everything is checked when the file is loaded, before any model is touched: an
unknown or mistyped key fails naming the file, the key and the valid choices.
Per-run overrides use dotted keys (`training.lr=1e-3`) and go through the same checks.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from langdec.core import languages
from langdec.core.errors import LangdecError, did_you_mean
from langdec.core.paths import experiments_dir
from langdec.core.registry import load_ref
from langdec.core.schema import POSITIVE, Key, at_least, build, read_yaml

TIER_PATTERN = re.compile(r"^(\d+)(k?)$")

# the values a setting takes, checked by the schema builder ("training.precision = 'fp8'; valid values: ...");
# the stage that reads a setting takes its values from here (models.effective.TRAINING_BACKENDS)
Precision = Literal["auto", "fp16", "bf16", "fp32"]
Quantization = Literal["nf4", "none"]
TrainingBackend = Literal["auto", "hf", "unsloth"]
Loss = Literal["auto", "fused", "plain"]
LongFiles = Literal["truncate", "windows"]
LrScheduler = Literal["cosine", "linear", "constant", "constant_with_warmup"]
EvaluationSource = Literal["hub", "fixtures"]
TruncationSide = Literal["right", "left"]
Slice = Literal["stratified", "head"]
CorpusData = Literal["build", "published"]
Filters = Literal["study", "langdec"]
Sampling = Literal["study", "keyed"]
Blend = Literal["study", "langdec"]


# --------------------------------------------------------------------------- schema
@dataclass
class ModelConfig:
    id: str  # hub id or local path; "smoke" builds the tiny offline model
    revision: str | None = None
    smoke: dict[str, Any] = field(default_factory=dict)  # Cohere2Config overrides for the tiny model
    tokenizer_vocab: int = 4096
    trust_remote_code: bool = False


@dataclass
class CorpusConfig:
    source: str  # "stdlib", a folder, a .parquet/.jsonl, or hf:ID[:config]
    tiers: dict[str, int]
    min_lines: int = 10
    max_lines: int = 1000
    licenses: list[str] = field(
        default_factory=lambda: ["mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "isc", "unlicense"]
    )
    require_license: bool = True
    validation_ratio: float = 0.1
    max_bytes: int = 200_000
    min_stars: int = 21
    near_dup_threshold: float = 0.7  # MinHash LSH Jaccard, 128 permutations, 5-token shingles
    # study: stream_the_stack.py's filter chain and columns (experiments/corpora/study_filters.yaml);
    # langdec: langdec's own (licence column as given, missing stars kept, a def/class by pattern, word shingles)
    filters: Filters = "study"
    # study: create_subset.py's seeded sample of sorted paths, datasets' train_test_split, idx = source row;
    # keyed: a keyed hash of each file picks the sample and the split, idx from the file's content
    sampling: Sampling = "study"
    # condition 3: study = create_condition3_blend.py (every native file, condition-2 files from outside the tier, drawn
    # from tier `blend_pool`); langdec = native files through the corpus filters, filled from the same tier
    blend: Blend = "study"
    blend_pool: str = "103k"
    # the-stack-v2 rows name blobs: their contents come from this S3 bucket (unsigned), or a mirror at content_endpoint
    content_bucket: str = "softwareheritage"
    content_endpoint: str | None = None
    fetch_workers: int = field(default=16, metadata=at_least(1))
    native: dict[str, str] = field(
        default_factory=dict
    )  # condition 3: language -> native-code source (same forms as `source`)
    # build: langdec makes each condition's data; published: train on the study's rows from `published`
    data: CorpusData = "build"
    published: str = (
        "hf:legesher/language-decoded-data"  # one config per condition, train/validation splits; or a local copy
    )

    def validate(self, key: Key) -> None:
        for tier, files in self.tiers.items():
            if files < 1:
                raise key.child("tiers").child(tier).refuse(f"= {files!r}; a tier is a positive number of files")
        check_base_url(self.content_endpoint, key.child("content_endpoint"))
        for lang in self.native:
            languages.get(lang)  # an unknown language fails here, listing the known ones
        if self.blend == "study" and self.native and self.blend_pool not in self.tiers:
            raise did_you_mean("corpus.blend_pool tier", self.blend_pool, self.tiers)
        for tier in self.tiers:
            if not TIER_PATTERN.match(tier):
                raise key.child("tiers").refuse(f"key {tier!r} must look like 5k, 20k or 500")


@dataclass
class TranslationConfig:
    """Condition 5: which model translates identifiers, comments and strings, and how hard to push it."""

    backend: str = "cohere"  # cohere | openai | hf
    model: str = "c4ai-aya-expanse-32b"
    base_url: str | None = None  # an OpenAI-compatible server (vLLM, ...); "local": the bundled stand-in server
    concurrency: int = field(default=8, metadata=at_least(1))
    max_retries: int = field(default=5, metadata=at_least(0))
    backoff_seconds: float = 1.0
    timeout_seconds: float = 120.0
    chunk_chars: int = 6000  # unit text per request; a long file becomes several requests

    def validate(self, key: Key) -> None:
        check_base_url(self.base_url, key.child("base_url"))


@dataclass
class TrainingConfig:
    max_length: int = field(default=1024, metadata=POSITIVE)
    lora_r: int = field(default=16, metadata=POSITIVE)
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    lr: float = field(default=2e-4, metadata=POSITIVE)
    scheduler: LrScheduler = "cosine"
    warmup_ratio: float = 0.05
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = field(default=8, metadata=POSITIVE)
    grad_accum: int = 1
    # the batch one optimiser step sees over every process; set, it decides grad_accum from the processes at hand
    # (the study: 16 = 8 per GPU x 2 GPUs; one GPU accumulates 2)
    global_batch: int | None = None
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    optimizer: str = "paged_adamw_8bit"  # a transformers optim name, or any pytorch-optimizer name (sophiah, lion, ...)
    optimizer_args: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments of that optimiser
    loss: Loss = "auto"  # fused (TRL's chunked LM head, no full logits) | plain (full logits) | auto: fused on CUDA, plain on CPU
    fourier_lambda: float = field(
        default=0.0, metadata=at_least(0)
    )  # weight of the Fourier penalty on LoRA updates (FLeX); 0 = off
    fourier_cutoff: float = 0.5  # normalised frequency radius in (0, 1) above which update energy is penalised
    precision: Precision = (
        "fp16"  # the study's; auto: bf16 where the GPU has it, else fp16 (paper-fixed) | bf16 | fp32; CPU runs fp32
    )
    quantization: Quantization = "nf4"
    backend: TrainingBackend = "auto"
    packing: bool = False
    gradient_checkpointing: bool = True
    logging_steps: int = 1
    save_steps: int = 200
    seed_data_order: bool = True
    # a file longer than max_length: truncate keeps its first max_length tokens (the study's pretokenize.py);
    # windows splits it into windows overlapping by one token, so every token is trained on (langdec's)
    long_files: LongFiles = "truncate"
    peft_method: str = "lora"  # lora (the study's) | dora | ln_tuning | ia3 (langdec.peft_methods)
    ln_modules: list[str] = field(
        default_factory=lambda: ["input_layernorm", "norm"]
    )  # ln_tuning: Cohere2's LayerNorms
    # the paper profile's NF4 refuses a machine without CUDA (a user who expects a GPU should hear of it at once);
    # true lets it run on CPU (CI, a laptop): bitsandbytes' CPU path, paged optimisers as plain AdamW. A permission,
    # not a recipe: never part of a run key or an arm name
    allow_cpu: bool = False

    def validate(self, key: Key) -> None:
        if not 0 < self.fourier_cutoff < 1:
            raise key.child("fourier_cutoff").refuse(f"must be in (0, 1), got {self.fourier_cutoff}")
        if self.global_batch is not None and (self.global_batch < 1 or self.global_batch % self.batch_size):
            raise key.child("global_batch").refuse(
                f"{self.global_batch} must be a positive multiple of {key.child('batch_size').path} {self.batch_size}"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise key.child("warmup_ratio").refuse(f"must be in [0, 1), got {self.warmup_ratio}")


@dataclass
class EvaluationConfig:
    benchmarks: list[str]
    source: EvaluationSource = "hub"
    templates: list[str] = field(default_factory=lambda: ["template1", "template2"])
    max_items: int | None = None  # None: every item, as the study ran; N: a slice of N items per benchmark and language
    # how max_items picks its N: stratified = a seeded sample stratified by gold label (proportional, one per label
    # when N allows), the same items in every run that shares slice_seed; head = the first N rows (earlier runs)
    slice: Slice = "stratified"
    slice_seed: int = 42
    max_new_tokens: int = field(default=10, metadata=POSITIVE)
    batch_size: int = field(default=32, metadata=POSITIVE)
    max_prompt_tokens: int = field(default=1024, metadata=POSITIVE)
    # right: cut a long prompt's end, as the study did; left: keep the end (question and answer cue)
    truncation_side: TruncationSide = "right"
    # the template set (experiments/prompts/<name>.yaml): study = the study's wording; langdec = langdec's earlier one
    prompts: str = "study"
    loglikelihood: bool = True
    # the model seam (langdec.evaluation.backends): hf = in this process (the study's path); openai = any
    # OpenAI-compatible completions server (vLLM, SGLang, llama.cpp, transformers serve) at base_url
    backend: str = "hf"
    base_url: str | None = None
    served_model: str = "{base}"  # the served name of the base model ({base}: model.id)
    adapter_model: str = (
        "{run_name}"  # an adapter's served name: vLLM's --lora-modules NAME ({run_name}, {adapter_dir})
    )
    api_key_env: str = "OPENAI_API_KEY"  # read from the environment by name, never recorded
    concurrency: int = field(default=4, metadata=POSITIVE)  # requests in flight at once
    # execution-scored code benchmarks (experiments/benchmarks/code/): pass@k over `code_samples` per task
    code_benchmarks: list[str] = field(default_factory=list)
    code_samples: int = field(
        default=1, metadata=POSITIVE
    )  # 1 with temperature 0: greedy pass@1; n > 1 with temperature > 0: pass@k for k in code_k
    code_temperature: float = 0.0
    code_k: list[int] = field(default_factory=lambda: [1])
    code_max_new_tokens: int = field(default=256, metadata=POSITIVE)
    code_workers: int = field(default=2, metadata=POSITIVE)  # candidates executed at once, each in its own sandbox
    code_timeout_seconds: float = field(default=10.0, metadata=POSITIVE)
    code_memory_mb: int = field(default=1024, metadata=POSITIVE)

    def validate(self, key: Key) -> None:
        if self.max_items is not None and self.max_items < 1:
            raise key.child("max_items").refuse(
                f"must be a positive number of items (or null for all), got {self.max_items}"
            )
        if self.code_benchmarks and (
            any(k > self.code_samples for k in self.code_k) or (self.code_samples > 1 and self.code_temperature <= 0)
        ):
            raise key.child("code_k").refuse(
                "must be <= code_samples, and code_samples > 1 needs code_temperature > 0 "
                "(greedy samples are all the same)"
            )


@dataclass
class Profile:
    name: str
    model: ModelConfig
    corpus: CorpusConfig
    training: TrainingConfig
    evaluation: EvaluationConfig
    registered_model: str
    translation: TranslationConfig = field(default_factory=TranslationConfig)
    path: Path | None = None

    def tier_files(self, tier: str) -> int:
        if tier in self.corpus.tiers:
            return self.corpus.tiers[tier]
        raise did_you_mean("tier", tier, self.corpus.tiers)

    def only(self, stage: str, sections: tuple[str, ...]) -> Profile:
        """This profile with only the named sections; every other section is withheld, so a stage that reads
        one it did not declare fails at once, naming both (pipeline.run gives each stage its declared
        sections). Name, registered model and path are the profile's identity and always kept."""
        unknown = [s for s in sections if s not in SECTIONS]
        if unknown:
            raise did_you_mean("profile section", unknown[0], SECTIONS)
        return dataclasses.replace(self, **{s: Withheld(stage, s) for s in SECTIONS if s not in sections})


SECTIONS = ("model", "corpus", "training", "evaluation", "translation")
DATA_LANGUAGES = ("en", "zh", "es", "ur")  # the study's evaluation languages: every matrix scores these unless told


class UndeclaredSection(RuntimeError):
    """A stage read a profile section it does not declare: a bug in langdec, not in the user's input."""


class Withheld:
    """Stands for a profile section a stage did not declare (Profile.only)."""

    def __init__(self, stage: str, section: str) -> None:
        self._stage, self._section = stage, section

    def _refuse(self, what: str):
        raise UndeclaredSection(
            f"the {self._stage} stage read profile.{self._section}{what}, which it does not declare; "
            f"add {self._section!r} to its SECTIONS"
        )

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse(f".{name}")

    def __bool__(self) -> bool:
        self._refuse("")


@dataclass
class Condition:
    name: str
    description: str
    data: str | None  # None (no adapter) | english | transpiled | native | llm-translated | code-benchmark
    languages: list[str] = field(default_factory=list)
    instruction_languages: str = "all"  # all | trained
    source_benchmark: str | None = None  # data: code-benchmark: whose train split is the training data
    # the study's name for this condition's data config and adapter folder ({lang}, {tier}, {translation_model})
    published_name: str = "condition-{condition}-{lang}-{tier}"
    available: bool = True
    unavailable_reason: str = ""

    def published_stem(self, lang: str | None, tier: str, translation_model: str = "") -> str:
        """The study's name for this condition's data config and adapter folder (`published_name`):
        condition-1-en-5k, condition-2-zh-5k, condition-3-zh-5k-native-code, condition-5-ur-5k-c4ai-aya-expanse-32b."""
        model = translation_model.rstrip("/").split("/")[-1]
        if "{translation_model}" in self.published_name and not model:
            raise LangdecError(
                f"condition {self.name}: its published name needs the translation model (profile translation.model)"
            )
        return self.published_name.format(condition=self.name, lang=lang or "en", tier=tier, translation_model=model)


@dataclass
class LadderEntry:
    condition: str
    langs: list[str] = field(default_factory=list)
    tiers: list[str] | None = None
    seeds: list[int] | None = None
    arm: str | None = None  # names a variant of the same job (e.g. an optimiser), so several can coexist
    overrides: list[str] = field(default_factory=list)  # profile overrides for this entry's jobs only


@dataclass
class Ladder:
    name: str
    profile: str
    phase: str
    tiers: list[str]
    seeds: list[int]
    runs: list[LadderEntry]
    data_languages: list[str] = field(default_factory=lambda: list(DATA_LANGUAGES))
    supersede: bool = False  # re-registering a (phase, condition, lang, tier, seed) replaces the old version
    seeds_per_tier: dict[str, list[int]] = field(default_factory=dict)  # e.g. {5k: [42, 123, 456], 20k: [42]}
    overrides: list[str] = field(default_factory=list)  # profile overrides for this ladder, e.g. a phase-2 corpus
    probes: list[str] = field(default_factory=list)  # after evaluation, probe every job's model (isotropy)
    note: str = ""  # printed under the ladder's tables: what its numbers can and cannot show
    path: Path | None = None


@dataclass(frozen=True)
class Job:
    """One adapter of the ladder: (condition, language, tier, seed); baseline has no language."""

    condition: str
    lang: str | None
    tier: str
    seed: int
    arm: str | None = None
    overrides: tuple[str, ...] = ()

    @property
    def run_name(self) -> str:
        if self.condition == "baseline":
            return "baseline"
        lang = f"-{self.lang}" if self.lang else ""
        arm = f"-{self.arm}" if self.arm else ""
        return f"cond{self.condition}{lang}-{self.tier}-s{self.seed}{arm}"

    @property
    def trains(self) -> bool:
        return self.condition != "baseline"


# --------------------------------------------------------------------------- loading
def apply_overrides(data: dict, overrides: list[str] | None, where: str) -> dict:
    """`section.key=value` pairs; values are parsed as YAML scalars (1e-3, true, [a, b])."""
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise LangdecError(f"override {item!r}: expected KEY=VALUE, e.g. training.lr=1e-3")
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if part not in target:
                target[part] = {}  # a section the file leaves at its defaults; an unknown one fails validation
            if not isinstance(target[part], dict):
                raise LangdecError(
                    f"{where}: override {key!r}: {part!r} is not a section; sections: {', '.join(k for k, v in data.items() if isinstance(v, dict))}"
                )
            target = target[part]
        value = yaml.safe_load(raw)
        # "1e-3" is a string to YAML 1.1; keep the raw text and let the field type decide.
        target[parts[-1]] = raw if isinstance(value, str) else value
    return data


def named_yaml(folder: str, name: str) -> Path:
    base = experiments_dir() / folder
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    path = base / f"{name}.yaml"
    if not path.exists():
        raise did_you_mean(folder.rstrip("s"), name, [p.stem for p in base.glob("*.yaml")])
    return path


# Overrides of these sections change what is trained, so they name a variant of the cell (an arm)
ADAPTER_SECTIONS = ("training", "corpus", "model", "translation")
PERMISSIONS = (
    "training.allow_cpu",
)  # allow a run where it would be refused; they change nothing trained: never an arm
SECRET_KEY = re.compile(r"(key|token|secret|passw|credential|auth)", re.IGNORECASE)  # keys whose values are never shown


def variant_name(overrides: list[str] | tuple[str, ...]) -> str | None:
    """The arm an override set makes: `training.lr=1e-4` -> `lr1e-4`, `corpus.data=published` -> `data-published`.

    None when nothing that changes the adapter is overridden (evaluation settings, say). The name is safe for
    run names and registry aliases (letters, digits, '-', '_'); a long one ends in a short digest."""
    import hashlib

    from langdec.core.urls import redact_url

    parts = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.strip().split(".")[0] in ADAPTER_SECTIONS and key.strip() not in PERMISSIONS:
            leaf = key.strip().split(".")[-1]
            value = value.strip()
            if SECRET_KEY.search(leaf):  # the value is a secret: the name says only that it was set
                parts.append(re.sub(r"[^A-Za-z0-9_-]", "", f"{leaf}-set"))
            elif "://" in value or "@" in value:
                # a URL can carry a user, a password or a token: named by a digest of what is left without them
                shown = redact_url(value) if "://" in value else value.rpartition("@")[2]
                parts.append(re.sub(r"[^A-Za-z0-9_-]", "", f"{leaf}-{hashlib.sha256(shown.encode()).hexdigest()[:8]}"))
            else:
                parts.append(
                    re.sub(
                        r"[^A-Za-z0-9_-]", "", f"{leaf}{'-' if value[:1].isalpha() else ''}{value.replace('.', 'p')}"
                    )
                )
    if not parts:
        return None
    name = "-".join(parts)
    return name if len(name) <= 40 else f"{name[:31]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


# Names a stage owns (a PEFT method, an optimiser, a benchmark, a backend) are checked by that stage's registry, and
# rules that need a stage's entries (LoRA-only settings, an optimiser's precision) by the stage. Config names the
# function that asks them and imports it only to run it, so config itself depends on no stage.
STAGE_CHECKS = "langdec.orchestration.profile_checks:check_profile"


def load_profile(name: str, overrides: list[str] | None = None) -> Profile:
    """The profile, every section checked by its own types and rules (schema.build), then every name and rule
    a stage owns (STAGE_CHECKS): a bad setting fails here, before any model loads."""
    path = named_yaml("profiles", name)
    data = apply_overrides(read_yaml(path), overrides, str(path))
    profile = build(Profile, data, str(path))
    profile.path = path
    load_ref(STAGE_CHECKS)(profile, str(path))
    return profile


def check_base_url(url: str | None, key: Key) -> None:
    """`local`, or an http(s) URL; the message never repeats the URL's credentials or query (they can hold keys)."""
    if url in (None, "", "local"):
        return
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on an out-of-range port
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        shown = url.split("?", 1)[0].split("#", 1)[0]
        shown = shown.split("@", 1)[-1] if "@" in shown else shown
        local = ", or `local` for the bundled stand-in" if key.path.startswith("translation.") else ""
        raise key.refuse(
            f"{shown!r} (query and credentials not shown) is not an http(s) URL "
            f"with a host and a valid port, e.g. http://host:8000/v1{local}"
        )


@functools.lru_cache(maxsize=1)
def conditions() -> dict[str, Condition]:
    path = experiments_dir() / "conditions.yaml"
    data = read_yaml(path)
    out = {}
    for key, body in data.items():
        body = dict(body or {})
        body.setdefault("name", str(key))
        out[str(key)] = build(Condition, body, f"{path}:{key}")
    return out


def condition(name: str | int) -> Condition:
    key = str(name).removeprefix("cond").removeprefix("condition-")
    found = conditions().get(key)
    if found is None:
        raise did_you_mean("condition", str(name), conditions())
    return found


def tier_size(tier: str) -> int:
    match = TIER_PATTERN.match(tier)
    if not match:
        raise LangdecError(f"tier {tier!r} must look like 5k, 20k or 500")
    return int(match.group(1)) * (1000 if match.group(2) else 1)
