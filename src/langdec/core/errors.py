"""The exception types the CLI turns into a clean message instead of a traceback."""


class LangdecError(Exception):
    """A user-facing error: the message names the file/row/key and says what to do."""


class Retryable(LangdecError):
    """A failure that running the same command again may cure: preemption, a store or network that is away for a
    while, a GPU out of memory. `langdec` exits with EXIT_RETRY for these, so a scheduler retries them and only them."""


class Preempted(Retryable):
    """The scheduler asked the process to stop (SIGTERM, SIGUSR2); training saved a checkpoint first when it could."""


EXIT_CONFIG = 2  # will fail again: fix the file/row/key the message names
EXIT_RETRY = 75  # EX_TEMPFAIL: the same command may succeed when run again


def did_you_mean(kind: str, name: str, valid) -> LangdecError:
    """A failed registry lookup that lists the valid names."""
    names = ", ".join(sorted(str(v) for v in valid)) or "(none)"
    return LangdecError(f"unknown {kind} {name!r}; valid {kind}s: {names}")
