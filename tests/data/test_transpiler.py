"""The transpiler: exact round trip, scope awareness, f-strings, collisions, digits, I/O."""

from __future__ import annotations

import json
import keyword
import random
import subprocess
import sys
from pathlib import Path

import pytest

from langdec.data.corpus import iter_source
from langdec.data.transpiler import engine, packs
from langdec.data.transpiler.lexer import IDENT, code_words

LANGS = packs.available()

TRICKY = [
    # f-strings: nested fields, conversions, format specs, debug '=', escaped braces, \N{}, raw
    'def f(x, width):\n    return f"{len(x)!r:>{width}} {{len}} {x=} {sum([1, 2]):{width}.{2}f}"\n',
    'name = "x"\nprint(f"\\N{BULLET} {name}", rf"\\{len(name)}", F"{max(1, 2)}")\n',
    "s = f'''multi\n{min(1, 2)}\nline {\"a\" if True else \"b\"}'''\n",
    # strings and comments are never touched, prefixes of every kind
    "x = 'if for while print'  # print(len(x)) in a comment\ny = b'len' + rb'\\d' \nz = u\"str\"\n",
    # CRLF, tabs, no trailing newline, a BOM, form feed, line continuation
    "\ufeffimport os\r\nif os.sep:\r\n\tprint(len(os.sep)) \\\r\n\t\tif True else None",
    "def g():\n\x0c    return [i for i in range(3) if i not in (1,)]",
    # non-ASCII and combining-mark identifiers stay exactly as written
    "变量 = 1\nनमस्ते = 变量 + 1\nprint(नमस्ते)\n",
    # structural pattern matching, soft keywords used as names too
    "match = 1\ncase = 2\nmatch (match, case):\n    case (1, 2):\n        print('m')\n    case _:\n        pass\n",
    # walrus in a comprehension, global/nonlocal, class scope, lambda defaults
    "def outer():\n    total = 0\n    def inner():\n        nonlocal total\n        total += len([y := 1 for _ in range(2)])\n    return inner\n"
    "class C:\n    list = list\n    def m(self, type=type):\n        return type(self.list)\nglobal_var = lambda n=len: n\n",
    # numbers of every shape
    "a = 0x1F + 0o17 + 0b101 + 1_000 + 3.14e-10 + 2j + .5 + 1.\n",
]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("source", TRICKY)
def test_round_trip_is_exact_on_tricky_sources(lang, source):
    pack = packs.load(lang)
    result = engine.translate(source, pack)  # raises if reverse(forward(x)) != x
    assert engine.reverse(result.text, pack) == source
    assert engine.english_keywords_left(result.text) == 0


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_round_trip_on_a_sample_of_the_standard_library(lang):
    rows = list(iter_source("stdlib"))
    sample = random.Random(7).sample(rows, 120)
    pack = packs.load(lang)
    exact = 0
    for row in sample:
        try:
            text = row.text()
            result = engine.translate(text, pack)
        except (UnicodeDecodeError, engine.TranspileError) as exc:
            assert getattr(exc, "reason", "utf8") in ("syntax", "utf8", "too-deep")
            continue
        assert engine.english_keywords_left(result.text) == 0
        exact += 1
    assert exact >= 110


def translate(src: str, lang: str = "zh") -> str:
    return engine.translate(src, packs.load(lang)).text


def test_keywords_and_builtins_are_translated():
    out = translate("for i in range(3):\n    print(len([i]))\n")
    assert out == "对于 i 在 范围(3):\n    打印(长度([i]))\n"


def test_names_the_file_binds_stay_as_written():
    src = "list = [1]\ndef input(prompt):\n    return prompt\nprint(list, input('x'))\n"
    out = translate(src)
    assert "list = [1]" in out and "定义 input(prompt)" in out and "打印(list, input('x'))" in out


def test_parameters_attributes_keywords_and_aliases_stay():
    src = "import json as type\ndef f(obj, len):\n    return obj.type, dict(type=len), type.dumps(len)\n"
    out = translate(src)
    assert "导入 json 作为 type" in out
    assert "obj.type" in out and "字典(type=len)" in out and "type.dumps(len)" in out


def test_shadowing_is_per_scope():
    src = "def a(str):\n    return str\ndef b(x):\n    return str(x)\n"
    out = translate(src)
    assert "定义 a(str):\n    返回 str\n" in out
    assert "返回 字符串(x)" in out


def test_class_scope_does_not_leak_into_methods():
    src = "class K:\n    len = 3\n    def m(self):\n        return len(self)\n"
    out = translate(src)
    assert "    len = 3" in out and "返回 长度(self)" in out


def test_strings_comments_and_fstring_literals_untouched_but_fstring_code_translated():
    src = 'x = 1  # print this if len\ns = "for in print"\nt = f"print {len(s)} if"\n'
    out = translate(src)
    assert "# print this if len" in out
    assert '"for in print"' in out
    assert 'f"print {长度(s)} if"' in out


def test_soft_keywords_only_where_they_are_keywords():
    src = "import re\nm = re.match('a', 'a')\nmatch m:\n    case None:\n        pass\n"
    out = translate(src)
    assert "re.match(" in out and "匹配 m:" in out and "情况 空:" in out


def test_collisions_are_escaped_and_reversible():
    pack = packs.load("es")
    src = "si = 1\nsi_ = 2\ny = si and si_\nprint(y)\n"
    out = engine.translate(src, pack).text
    assert out == "si_ = 1\nsi__ = 2\ny_ = si_ y si__\nimprimir(y_)\n"
    assert engine.reverse(out, pack) == src


def test_digits_are_localised_where_the_pack_says():
    pack = packs.load("ur")
    src = "x = 1_024 + 0x1F\nv2 = x\n"
    out = engine.translate(src, pack).text
    assert out == "x = ۱_۰۲۴ + ۰x۱F\nv2 = x\n"
    assert engine.reverse(out, pack) == src
    assert translate(src, "zh") == src  # Chinese keeps ASCII digits


def test_refused_inputs_name_their_reason():
    pack = packs.load("zh")
    with pytest.raises(engine.TranspileError) as err:
        engine.translate("def broken(:\n", pack)
    assert err.value.reason == "syntax"
    with pytest.raises(engine.TranspileError):
        engine.translate("x = 1\x00\n", pack)


def test_every_pack_is_valid_and_complete():
    for lang in LANGS:
        assert packs.validate(lang) == []
        pack = packs.load(lang)
        assert set(pack.keywords) == set(keyword.kwlist)
        assert len(pack.targets) == len(pack.forward)  # words are unique


def test_validator_reports_collisions_and_invalid_words(tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "proj"
    shutil.copytree(Path(__file__).resolve().parents[2] / "experiments", root / "experiments")
    shutil.copy(Path(__file__).resolve().parents[2] / "MLproject", root / "MLproject")
    (root / "languages").mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "languages" / "en.yaml", root / "languages" / "en.yaml")
    (root / "languages" / "xx.yaml").write_text(
        "code: xx\nname: Test\nflores: xxx_Latn\npython:\n  keywords:\n    'if': wenn\n    'else': wenn\n    'for': 'no'\n    'while': no\n"
        "  builtins:\n    'len': 'bad word'\n    'print': 'ﬁle'\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("LANGDEC_ROOT", str(root))
    from langdec.core import languages

    languages.all_languages.cache_clear()
    languages._alias_index.cache_clear()
    try:
        problems = "\n".join(packs.validate("xx"))
    finally:
        languages.all_languages.cache_clear()
        languages._alias_index.cache_clear()
    assert "collides with python.keywords.if" in problems
    assert "python.keywords.while: keys and words must be strings" in problems  # YAML read `no` as False
    assert "'bad word' is not a valid Python identifier" in problems
    assert "not NFKC-normalised" in problems
    assert "lacks" in problems


def _langdec(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "langdec.cli", *args], cwd=cwd, input=stdin, capture_output=True, text=True
    )


def test_cli_roundtrip_and_transpile_tree(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "good.py").write_bytes(b"def f(x):\r\n    return len(x)\r\n")
    (src / "bad_syntax.py").write_text("def (:\n")
    (src / "latin1.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    result = _langdec("--quiet", "roundtrip", str(src), "--lang", "hi", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["files"] == 3 and summary["exact"] == 1
    assert summary["failed"] == {"syntax": 1, "not-utf8": 1}
    assert {f["file_path"] for f in summary["failures"]} == {"bad_syntax.py", "latin1.py"}

    out = tmp_path / "out"
    result = _langdec("transpile", str(src), "--lang", "hi", "--out", str(out), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.py")) == ["pkg/good.py"]
    assert (out / "pkg" / "good.py").read_bytes() == "परिभाषा f(x):\r\n    लौटाओ लंबाई(x)\r\n".encode()
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["failed"] == {"syntax": 1, "not-utf8": 1}

    back = tmp_path / "back"
    assert (
        _langdec(
            "transpile", str(out), "--lang", "hi", "--reverse", "--out", str(back), "--quiet", cwd=tmp_path
        ).returncode
        == 0
    )
    assert (back / "pkg" / "good.py").read_bytes() == (src / "pkg" / "good.py").read_bytes()


@pytest.mark.slow
def test_cli_transpile_to_parquet_rows(tmp_path):
    import pandas as pd

    src = tmp_path / "a.py"
    src.write_text("print(len('x'))\n")
    out = tmp_path / "rows.parquet"
    result = _langdec("transpile", str(src), "--lang", "ar", "--out", str(out), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(out)
    assert list(frame.columns)[:7] == ["code", "code_en", "language", "file_path", "license", "idx", "token_count"]
    assert frame.loc[0, "code"] == "اطبع(طول('x'))\n" and frame.loc[0, "code_en"] == "print(len('x'))\n"
    assert frame.loc[0, "pack_digest"] == packs.load("ar").digest


def test_cli_unknown_language_lists_valid_ones(tmp_path):
    result = _langdec("roundtrip", str(tmp_path), "--lang", "xx", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown language 'xx'" in result.stderr and "zh" in result.stderr


def test_lexer_finds_code_words_only():
    text = 'a = f"x{b!r:{c}}y" # d\n"e"'
    words = [text[s:e] for s, e, k in code_words(text) if k == IDENT]
    assert words == ["a", "b", "c"]


def test_a_file_written_with_the_studys_urdu_words_reverses():
    """The study's outputs show its Urdu words (analysis/phase-2/urdu-code-leakage-analysis.md); langdec's pack uses them."""
    from langdec.data.transpiler import engine
    from langdec.data.transpiler import packs as language_packs

    study = (
        "درآمد os\n\nکلاس Box:\n    تعریف full(self):\n        اگر self.n اور self.m:\n            واپسی صحیح\n"
        "        تصدیق self.n\n        واپسی غلط\n"
    )
    english = (
        "import os\n\nclass Box:\n    def full(self):\n        if self.n and self.m:\n            return True\n"
        "        assert self.n\n        return False\n"
    )
    pack = language_packs.load("ur")
    assert engine.reverse(study, pack) == english
    assert engine.forward(english, pack).text == study


def test_a_pack_that_drifts_from_the_studys_evidence_is_invalid(monkeypatch):
    from langdec.core import languages
    from langdec.data.transpiler import packs as language_packs

    keywords = languages.get("ur").table["python"]["keywords"]
    monkeypatch.setitem(keywords, "class", "جماعت")
    problems = language_packs.validate("ur")
    assert any("python.keywords.class is 'جماعت', but the study's outputs show 'کلاس'" in p for p in problems)


# ---------------------------------------------------------------------- hostile cases: compatibility characters
def test_python_vocabulary_in_compatibility_characters_is_refused_not_left_untranslated(tmp_path):
    from langdec.data.transpiler import packs
    from langdec.data.transpiler.engine import TranspileError, english_keywords_left, translate

    with pytest.raises(TranspileError, match="compatibility-form"):
        translate("ｐｒｉｎｔ(1)\n", packs.load("zh"))
    assert translate("print(1)\n", packs.load("zh")).text != "print(1)\n" and english_keywords_left("x = 1\n") == 0
