"""One registry helper for everything looked up by name: a failed lookup lists the valid names, and an entry named
"module:attr" is imported on its first lookup, not before."""

from __future__ import annotations

import sys
import textwrap

import pytest

from langdec.core.errors import LangdecError
from langdec.core.registry import Registry, load_ref


def test_a_failed_lookup_lists_the_valid_names_and_says_where():
    colours = Registry("colour", {"red": 1, "green": 2})
    assert colours.get("red") == 1 and colours["green"] == 2 and "red" in colours and "blue" not in colours
    with pytest.raises(LangdecError, match=r"^unknown colour 'blue'; valid colours: green, red$"):
        colours.get("blue")
    with pytest.raises(LangdecError, match=r"^f.yaml: paint: unknown colour 'blue'; valid colours: green, red$"):
        colours.get("blue", where="f.yaml: paint")
    with pytest.raises(LangdecError, match="unknown colour 'None'"):
        colours.get(None)  # a missing name (a YAML null) fails the same way, not with a TypeError
    assert list(colours) == ["red", "green"] and colours.names() == ["green", "red"] and len(colours) == 2


def test_register_adds_a_function_under_its_name_once():
    steps: Registry = Registry("step")

    @steps.register
    def strip(text: str) -> str:
        return text.strip()

    assert steps.get("strip") is strip and dict(steps.items()) == {"strip": strip}
    with pytest.raises(ValueError, match="step 'strip' is registered twice"):
        steps.register(strip)


def test_a_lazy_entry_is_imported_on_its_first_lookup_only(tmp_path, monkeypatch):
    (tmp_path / "lazy_plugin_for_test.py").write_text(
        textwrap.dedent("""
        IMPORTS = []
        IMPORTS.append(1)

        class Thing:
            name = "thing"
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_plugin_for_test", raising=False)
    things = Registry("thing", {"eager": object()}, lazy={"lazy": "lazy_plugin_for_test:Thing"})
    assert "lazy" in things and things.names() == ["eager", "lazy"]
    with pytest.raises(LangdecError, match="valid things: eager, lazy"):
        things.get("other")
    assert "lazy_plugin_for_test" not in sys.modules  # listing names and failing a lookup import nothing
    found = things.get("lazy")
    module = sys.modules["lazy_plugin_for_test"]
    assert found is module.Thing and things.get("lazy") is found and module.IMPORTS == [1]
    assert load_ref("lazy_plugin_for_test") is module and load_ref("lazy_plugin_for_test:Thing.name") == "thing"


def test_the_stage_registries_share_the_helper_and_keep_their_names():
    from langdec.data import kinds
    from langdec.data.translation import backends as translation_backends
    from langdec.evaluation import backends as evaluation_backends
    from langdec.evaluation import diagnostics, extract_steps
    from langdec.models import peft_methods
    from langdec.orchestration import scheduling, sweep

    for registry in (
        kinds.KINDS,
        peft_methods.METHODS,
        evaluation_backends.BACKENDS,
        translation_backends.BACKENDS,
        extract_steps.STEPS,
        diagnostics.DIAGNOSTICS,
        scheduling.BACKENDS,
        sweep.PRUNERS,
    ):
        assert isinstance(registry, Registry)
    assert extract_steps.STEPS.get("first_line") is extract_steps.first_line  # @step registers under the name
    assert list(scheduling.BACKENDS) == ["slurm", "ray"] and scheduling.get("slurm").name == "slurm"
    assert evaluation_backends.names() == ["hf", "openai"] and kinds.names() == sorted(kinds.KINDS)
    with pytest.raises(LangdecError, match="unknown pruner 'genetic'; valid pruners: hyperband, median, none"):
        sweep.PRUNERS.get("genetic")
    with pytest.raises(
        LangdecError, match="unknown diagnostic 'x'; valid diagnostics: top_label_share, unparsed, xnli_overlap"
    ):
        diagnostics.get("x")
