"""The evaluation stage (langdec.evaluation.stage): `reparse` of a run the store does not hold is one line, exit 2."""

from __future__ import annotations

from conftest import cli_exit, one_error_line

_main = cli_exit


_one_error = one_error_line


def test_reparse_of_an_unknown_run_is_one_line(capsys, module_store):
    code, err = _main(capsys, "reparse", "0123456789abcdef0123456789abcdef", "--extractor", "strict")
    assert code == 2 and "no run 0123456789abcdef0123456789abcdef" in _one_error(err)
