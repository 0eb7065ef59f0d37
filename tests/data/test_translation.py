"""Condition 5 (LLM translation) and condition 3 (native code).

The backends are the real `openai` and `cohere` SDK clients talking over HTTP to
langdec's local stand-in server (the only mock allowed: a paid API), which
injects rate limits, server errors, slow answers and malformed answers.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.data import stage as data
from langdec.data.translation import backends, units
from langdec.data.translation.cache import AnswerCache
from langdec.data.translation.engine import Translator
from langdec.data.translation.localserver import Faults, LocalChatServer

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = '''"""Utilities for parsing headers."""
import os
from collections import OrderedDict as OD
import threading


class HeaderParser:
    """Parses a header block."""

    def __init__(self, text, strict=False):
        self.strict = strict  # the raw text of the header
        self.fields = OD()

    def parse_line(self, line):
        name, _, value = line.partition(":")
        if not value and self.strict:
            raise ValueError("missing value in line %r" % line)
        self.fields[name.strip()] = value.strip()
        return name


class Worker(threading.Thread):
    def run(self):
        print("worker is running now", self.name)


def read_headers(path, strict=False):
    # read every header line from the file
    with open(path, encoding="utf-8") as handle:
        parser = HeaderParser(handle.read(), strict=strict)
    total_count = len(parser.fields)
    print(f"read {total_count} headers from {os.path.basename(path)}")
    return parser.fields, {"key": "value"}
'''


def _names(code: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}


def _tagged(fu: units.FileUnits) -> dict[str, str]:
    return {u.key: (f"t_{u.text}" if u.kind == "identifier" else f"T {u.text}") for u in fu.units}


# --------------------------------------------------------------------------- units
def test_symbol_table_renames_own_names_and_keeps_external_ones():
    fu = units.extract(SAMPLE)
    out = units.apply(SAMPLE, fu, _tagged(fu))
    tree = ast.parse(out)  # still Python
    names = _names(out)
    # the file's own names, renamed the same way everywhere (f-string expressions included)
    assert {"t_HeaderParser", "t_parser", "t_total_count", "t_line"} <= names and "def t_read_headers(" in out
    assert "{t_total_count}" in out and "total_count" not in out.replace("t_total_count", "")
    # imports, builtins and library calls stay English
    assert {"os", "OD", "threading", "open", "len", "print", "ValueError"} <= names
    assert "os.path.basename" in out and "t_handle.read()" in out
    # a keyword argument of an external call stays; of the file's own class, it follows the parameter
    assert 'encoding="utf-8"' in out and "t_strict=t_strict" in out
    # a method of a class with an external base may override the library's API: kept
    assert "def run(self)" in out and "self.name" in out
    # attributes only set and read through self are the file's own; `fields` is read on `parser` too
    assert "self.t_strict" in out and "self.fields" in out and "t_parser.fields" in out
    # prose is translated, keys are not; docstrings and comments too
    assert '"T missing value in line %r"' in out and '{"key": "value"}' in out
    assert '"""T Parses a header block."""' in out and "# T read every header line from the file" in out
    assert isinstance(tree, ast.Module)


def test_translation_checks_reject_broken_answers():
    fu = units.extract(SAMPLE)
    good = _tagged(fu)
    assert units.check(fu, good) is None
    key = next(u.key for u in fu.identifiers if u.text == "parser")
    assert "not a valid Python name" in units.check(fu, {**good, key: "the parser"})
    assert "collides" in units.check(fu, {**good, key: "print"})
    other = next(u.key for u in fu.identifiers if u.text == "handle")
    assert "both became" in units.check(fu, {**good, key: "x_1", other: "x_1"})
    placeholder = next(u.key for u in fu.units if "%r" in u.text)
    assert "placeholders" in units.check(fu, {**good, placeholder: "missing value"})
    assert "missing units" in units.check(fu, {k: v for k, v in good.items() if k != placeholder})


def test_string_literals_are_re_escaped_for_their_quotes():
    code = 'def greet_user(name):\n    return "hello dear friend" + \'it is "fine" now\'\n'
    fu = units.extract(code)
    tr = {u.key: ('say "hi" and\nbye' if u.kind == "string" else u.text) for u in fu.units}
    out = units.apply(code, fu, tr)
    values = [n.value for n in ast.walk(ast.parse(out)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert values == ['say "hi" and\nbye', 'say "hi" and\nbye']


# --------------------------------------------------------------------------- backends through the local server
def _files(n: int) -> list[tuple[str, str]]:
    """Small real files: variants of the sample with distinct names (distinct requests)."""
    return [
        (
            f"pkg/mod_{i}.py",
            SAMPLE.replace("HeaderParser", f"HeaderParser{i}").replace("total_count", f"total_count_{i}"),
        )
        for i in range(n)
    ]


def _translate_all(backend, lang, cache_root, files, concurrency=4):
    from langdec.data.sources import SourceRow

    t = Translator(backend, lang, AnswerCache(cache_root), policy=backends.RetryPolicy(max_retries=4, base_delay=0.01))
    rows = [SourceRow(path, code, "mit", i) for i, (path, code) in enumerate(files)]
    return t, list(t.run(rows, concurrency=concurrency, progress=False))


def test_openai_sdk_under_injected_faults_then_cache(tmp_path):
    faults = Faults(rate_limit=0.3, server_error=0.2, slow=0.15, slow_seconds=1.5, malformed=0.2, malformed_always=0.1)
    files = _files(24)
    with LocalChatServer(api_key="sk-local-test", faults=faults) as server:
        backend = backends.OpenAIBackend("aya-test", server.url + "/v1", timeout=0.5, api_key="sk-local-test")
        t, outcomes = _translate_all(backend, "zh", tmp_path / "cache", files)
        report = t.report()
        excluded = [o for o in outcomes if not o.ok]
        # transient faults were retried until they succeeded; malformed answers got one content retry
        api = report["api"]
        assert api["errors"].get("rate_limited", 0) > 0 and api["errors"].get("server_error_500", 0) > 0
        assert api["errors"].get("timeout", 0) > 0
        assert api["retries"] == sum(api["errors"].values())
        assert report["recovered_by_retry"] > 0
        assert server.stats.faults.get("malformed_always", 0) > 0
        # only always-malformed files are lost, each after exactly two attempts, with its reason
        assert excluded and all(o.reason == "malformed-output" and o.attempts == 2 for o in excluded)
        assert len(excluded) == report["excluded"]["malformed-output"]
        for o in outcomes:
            if o.ok:
                ast.parse(o.translated)
                assert "类" in o.text and "头部" in o.text  # keywords transpiled, identifiers translated
        assert api["input_tokens"] > 0 and api["output_tokens"] > 0
        requests_before = server.stats.requests

        # a re-run pays nothing: every answer (good or bad) comes from the cache
        t2, again = _translate_all(backend, "zh", tmp_path / "cache", files)
        assert server.stats.requests == requests_before
        assert t2.report()["cache_hit_rate"] == 1.0 and t2.report()["api"]["requests"] == 0
        assert [o.text for o in again] == [o.text for o in outcomes]


def test_cohere_sdk_against_the_v2_chat_endpoint(tmp_path):
    with LocalChatServer(api_key="co-local-test", faults=Faults(rate_limit=0.5, server_error=0.3)) as server:
        backend = backends.CohereBackend("c4ai-aya-expanse-32b", server.url, timeout=5, api_key="co-local-test")
        t, outcomes = _translate_all(backend, "ur", tmp_path / "cache", _files(6))
        assert all(o.ok for o in outcomes), [o.detail for o in outcomes if not o.ok]
        assert t.report()["api"]["errors"]["rate_limited"] > 0
        assert server.stats.by_status["429"] > 0 and server.stats.authorised == server.stats.requests
        assert "کلاس" in outcomes[0].text  # ur `class` (the study's word)


def test_backend_gives_up_after_max_retries_and_reports_it(tmp_path):
    with LocalChatServer(faults=Faults(server_error=1.0, repeat=100)) as server:
        backend = backends.OpenAIBackend("m", server.url + "/v1", timeout=5, api_key="unused")
        t = Translator(
            backend, "es", AnswerCache(tmp_path), policy=backends.RetryPolicy(max_retries=2, base_delay=0.001)
        )
        outcome = t.translate(SAMPLE, file_path="a.py")
    assert not outcome.ok and outcome.reason == "backend-gave-up" and "after 3 attempts" in outcome.detail
    assert t.counters.requests == 3


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    with pytest.raises(LangdecError, match="CO_API_KEY or COHERE_API_KEY"):
        backends.build("cohere", "c4ai-aya-expanse-32b")
    with pytest.raises(LangdecError, match="valid translation backends?: cohere, hf, openai|did you mean"):
        backends.build("anthropic", "x")


def test_hf_backend_on_the_smoke_model_excludes_what_it_cannot_parse(smoke_profile, tmp_path):
    backend = backends.HFBackend("smoke", max_new_tokens=16, profile=smoke_profile)
    t = Translator(backend, "zh", AnswerCache(tmp_path))
    outcome = t.translate(SAMPLE, file_path="a.py")
    # a random tiny model cannot answer JSON: the file is retried once, then excluded with its reason
    assert not outcome.ok and outcome.reason == "malformed-output" and outcome.attempts == 2
    assert t.counters.requests == 2 and t.counters.output_tokens > 0


# --------------------------------------------------------------------------- the command: secrets, interruption
def _cli(args: list[str], env: dict, cwd: Path, **kw) -> subprocess.Popen:
    # as a command typed in a terminal: Ctrl-C interrupts it, even when these tests run in a background job
    # (whose commands start with SIGINT ignored, which a child inherits)
    return subprocess.Popen(
        [sys.executable, "-m", "langdec.cli", "--quiet", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kw,
    )


@pytest.mark.slow
def test_translate_command_never_logs_the_key_and_resumes_after_interrupt(tmp_path, langdec_home):
    secret = "sk-SECRET-do-not-log-4242"
    src = tmp_path / "src"
    for path, code in _files(12):
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(code)
    env = {
        **os.environ,
        "OPENAI_API_KEY": secret,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "LANGDEC_HOME": str(tmp_path / "home"),
    }
    out = tmp_path / "out.parquet"
    # every first request is slow, so the run can be interrupted part-way through
    with LocalChatServer(api_key=secret, faults=Faults(slow=1.0, slow_seconds=0.4)) as server:
        url = f"{server.url}/v1"
        args = [
            "translate",
            str(src),
            "--lang",
            "es",
            "--backend",
            "openai",
            "--model",
            "m",
            "--base-url",
            url,
            "--concurrency",
            "1",
            "--out",
            str(out),
        ]
        proc = _cli(args, env, tmp_path)
        deadline = time.time() + 60
        while server.stats.requests < 4 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        first_out, first_err = proc.communicate(timeout=60)
        assert proc.returncode == 130, first_err[-2000:]
        assert not out.exists()  # nothing half-written
        paid = server.stats.requests
        done = _cli(args, env, tmp_path)
        second_out, second_err = done.communicate(timeout=120)
        assert done.returncode == 0, second_err[-2000:]
        assert server.stats.authorised == server.stats.requests  # the key did reach the API
    report = json.loads(second_out[: second_out.rindex("}") + 1])
    assert report["cache_hits"] >= paid - 1 and report["translated"] == 12  # resumed, nothing paid twice
    assert len(pd.read_parquet(out)) == 12
    # the key is nowhere: not in the store, artifacts, outputs or logs
    haystack = [first_out, first_err, second_out, second_err, (tmp_path / "mlflow.db").read_bytes().decode("latin-1")]
    for path in list(tmp_path.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".yaml", ".txt", ".jsonl", ".md", ""):
            haystack.append(path.read_bytes().decode("latin-1"))
    assert not [h for h in haystack if secret in h]
    assert report["base_url"] == url


def test_urls_are_logged_without_credentials_and_a_wrong_key_stops_the_run(tmp_path):
    assert backends.redact_url("https://user:pw@host.example:8443/v1?api_key=k#x") == "https://host.example:8443/v1"
    with LocalChatServer(api_key="right") as server:
        backend = backends.OpenAIBackend("m", server.url + "/v1", timeout=5, api_key="wrong")
        t = Translator(backend, "zh", AnswerCache(tmp_path))
        with pytest.raises(LangdecError, match="HTTP 401.*check the API key variable"):
            t.translate(SAMPLE)


# --------------------------------------------------------------------------- conditions 5 and 3 as ladder data
def test_condition5_data_is_aligned_across_languages(smoke_profile):
    cond = config.condition("5")
    built = {
        lang: data.prepare(smoke_profile, cond, config.Job("5", lang, "5k", 42), progress=False)
        for lang in cond.languages
    }
    zh = built["zh"]
    tr = zh.manifest["translation"]
    assert tr["backend"] == "openai" and tr["base_url"] == "local" and set(tr["reports"]) == {"zh", "es", "ur"}
    # the same files in every language (source-file control), and every loss is listed with its language
    idx = {lang: set(pd.concat(d.frames())["idx"]) for lang, d in built.items()}
    assert idx["zh"] == idx["es"] == idx["ur"] and len(idx["zh"]) == tr["aligned_files"]
    assert tr["input_files"] - tr["aligned_files"] == len({e["idx"] for e in zh.manifest["lost_files"]})
    train, _ = zh.frames()
    assert list(train.columns[:7]) == data.SCHEMA
    assert train["code"].str.contains("定义").all() and not train["code"].equals(train["code_en"])
    # only the first language paid: the others (and a rebuild) come from the answer cache
    assert (
        built["ur"].manifest["translation"]["reports"]["ur"]["api"]["requests"]
        == tr["reports"]["ur"]["api"]["requests"]
    )

    from langdec.data import checks

    result = checks.run_checks(
        checks.load_data_frame(zh.path), cond, set(data.build_tier_idx(smoke_profile, config.Job("5", "zh", "5k", 42)))
    )
    assert result.success, result.failed


def test_condition3_blends_native_files_to_the_tier_size(smoke_profile):
    cond = config.condition("3")
    built = data.prepare(smoke_profile, cond, config.Job("3", "zh", "5k", 42), progress=False)
    blend = built.manifest["blend"]
    frame = pd.concat(built.frames())
    assert blend["native_files"] == 8 and blend["native_files"] + blend["condition_2_files"] == blend[
        "tier_size"
    ] == len(frame)
    assert (frame["origin"] == "native").sum() == 8 and frame["idx"].is_unique
    native = frame[frame["origin"] == "native"]
    assert native["file_path"].str.startswith("native/").all() and native["code"].str.contains("def ").all()
    assert frame[frame["origin"] == "condition-2"]["code"].str.contains("定义").all()
    assert blend["native_filters"]["seen"] == 8

    from langdec.data import checks

    assert checks.run_checks(checks.load_data_frame(built.path), cond, None).success


@pytest.mark.slow
def test_condition3_without_a_native_source_says_what_to_set(smoke_profile):
    import dataclasses

    profile = dataclasses.replace(smoke_profile, corpus=dataclasses.replace(smoke_profile.corpus, native={}))
    with pytest.raises(LangdecError, match="add corpus.native.zh"):
        data.prepare(profile, config.condition("3"), config.Job("3", "zh", "5k", 42), progress=False)


@pytest.mark.slow
def test_the_studys_condition_3_blend(langdec_home):
    """create_condition3_blend.py: every native file, then condition-2 files from outside the tier (the pool tier
    without the tier's paths), sorted by path and drawn with random.Random(seed).sample, split on their own."""
    import random

    from langdec.data import corpus, study_corpus
    from langdec.data import stage as data
    from langdec.data.kinds import native

    profile = config.load_profile("smoke", ["corpus.blend=study", "corpus.blend_pool=103k"])
    cond, job = config.condition("3"), config.Job("3", "zh", "5k", 42)
    built = data.prepare(profile, cond, job, progress=False)
    train, validation = built.frames()
    frame = pd.concat([train, validation])
    tier = corpus.build_tier(profile, "5k", 42, progress=False)
    pool = corpus.build_tier(profile, "103k", 42, progress=False)
    natives = list(corpus.iter_source(native.source_for(profile, "zh")))
    assert (frame["origin"] == "native").sum() == len(natives)  # every native file, none filtered out
    fill = frame[frame["origin"] == "condition-2-pool"]
    assert not set(fill["file_path"]) & set(tier.frame["file_path"])  # conditions 2 and 3 share no file
    available = pool.frame[~pool.frame["file_path"].isin(set(tier.frame["file_path"]))].sort_values("file_path")
    need = len(tier.frame) - len(natives)
    expected = available.iloc[sorted(random.Random(42).sample(range(len(available)), need))]["file_path"]
    lost = {
        entry["file_path"] for entry in built.manifest["lost_files"]
    }  # drawn, but the transpiler refused them (listed)
    assert set(fill["file_path"]) | lost == set(expected) and len(fill) == need - len(lost)
    assert set(validation["idx"]) == study_corpus.validation_idx(list(zip(frame["file_path"], frame["idx"])), 42, 0.1)
    assert built.manifest["blend"]["blend"] == "study" and built.manifest["blend"]["pool_tier"] == "103k"
    langdec_way = data.prepare(config.load_profile("smoke"), cond, job, progress=False)
    assert langdec_way.digest != built.digest and langdec_way.manifest["blend"]["blend"] == "langdec"
