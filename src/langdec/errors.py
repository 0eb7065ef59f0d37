"""The one exception type the CLI turns into a clean message instead of a traceback."""


class LangdecError(Exception):
    """A user-facing error: the message names the file/row/key and says what to do."""


def did_you_mean(kind: str, name: str, valid) -> LangdecError:
    """A failed registry lookup that lists the valid names."""
    names = ", ".join(sorted(str(v) for v in valid)) or "(none)"
    return LangdecError(f"unknown {kind} {name!r}; valid {kind}s: {names}")
