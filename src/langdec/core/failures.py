"""Which failures running the same command again may cure, and the exit status that says so.

A scheduler (SLURM, Ray, a shell loop) retries on EXIT_RETRY and only on it; a configuration or data error
(EXIT_CONFIG) would fail the same way again, and anything else is a bug to report (1). The cause chain is read
whole: libraries wrap a dropped connection or a CUDA out-of-memory in their own exception types."""

from __future__ import annotations

import errno

from langdec.core.errors import EXIT_CONFIG, EXIT_RETRY, LangdecError, Retryable

# exception class names (anywhere in the class's MRO) of the libraries langdec talks to, by what they mean
_TRANSIENT_TYPES = {
    "OutOfMemoryError": "out of GPU memory",  # torch.cuda.OutOfMemoryError, torch.OutOfMemoryError
    "MemoryError": "out of memory",
    "ConnectionError": "the network",  # builtins, requests, urllib3 (ProtocolError is one too)
    "TimeoutError": "the network",
    "Timeout": "the network",  # requests.Timeout
    "MaxRetryError": "the network",  # urllib3, when the tracking server stays away
    "OperationalError": "the database",  # sqlalchemy / psycopg: server gone, connection reset, locked
    "InterfaceError": "the database",
    "DisconnectionError": "the database",
    "RayActorError": "a lost node",
    "WorkerCrashedError": "a lost node",
    "NodeDiedError": "a lost node",
}
_TRANSIENT_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
    errno.ESTALE,
    errno.EAGAIN,
}
# MLflow raises its own exception for a server answering 5xx or a store it cannot reach
_TRANSIENT_MLFLOW_CODES = {"TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"}
_TRANSIENT_TEXT = (
    "CUDA out of memory",
    "CUDA error: out of memory",
    "Max retries exceeded",
    "Connection refused",
    "connection reset",
    "server closed the connection",
    "could not connect to server",
    "database is locked",
    "Temporary failure in name resolution",
    "NCCL timeout",
    "Watchdog caught collective operation timeout",
)


def _chain(exc: BaseException | None):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(seen) < 20:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def retry_reason(exc: BaseException) -> str | None:
    """Why running again may succeed ('out of GPU memory', 'the network', ...), or None when it would not."""
    for link in _chain(exc):
        if isinstance(link, Retryable):
            return "preempted" if type(link).__name__ == "Preempted" else str(link).split(";")[0][:80] or "retryable"
        if isinstance(link, LangdecError):
            return None  # a message for the user: the input is what is wrong
        for klass in type(link).__mro__:
            if klass.__name__ in _TRANSIENT_TYPES:
                return _TRANSIENT_TYPES[klass.__name__]
        if isinstance(link, OSError) and link.errno in _TRANSIENT_ERRNOS:
            return "the network or a shared file system"
        if getattr(link, "error_code", None) in _TRANSIENT_MLFLOW_CODES:
            return "the tracking server"
        text = str(link)
        if any(marker.lower() in text.lower() for marker in _TRANSIENT_TEXT):
            return "out of GPU memory" if "memory" in text else "the network or a store"
    return None


def exit_code(exc: BaseException) -> int:
    """EXIT_RETRY when running again may help, EXIT_CONFIG for an error the user must fix, 1 for a bug."""
    if retry_reason(exc) is not None:
        return EXIT_RETRY
    return EXIT_CONFIG if isinstance(exc, LangdecError) else 1
