"""The evaluation stage (langdec.evaluation.stage): `reparse` of a run the store does not hold is one line, exit 2."""

from __future__ import annotations

from langdec import cli


def _main(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["--quiet", *argv])
    return code, capsys.readouterr().err


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_reparse_of_an_unknown_run_is_one_line(capsys, module_store):
    code, err = _main(capsys, "reparse", "0123456789abcdef0123456789abcdef", "--extractor", "strict")
    assert code == 2 and "no run 0123456789abcdef0123456789abcdef" in _one_error(err)
