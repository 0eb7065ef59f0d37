"""Server URLs as they may be shown or recorded: never their credentials or query."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str | None) -> str:
    """A base URL without credentials or query (both can carry secrets)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # out of range: show none rather than fail while reporting
        port = None
    if port:
        host += f":{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
