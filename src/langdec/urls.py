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


def without_secrets(text: str) -> str:
    """`text` with every URL in it stripped of its password and query (the user name stays, to say whose
    store it is). The password is everything between the user's ':' and the last '@' before the host, so a raw
    '@' inside it is hidden too."""
    import re

    def hide(match: "re.Match") -> str:
        scheme, rest = match.group(1), match.group(2)
        path_at = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
        netloc, tail = rest[:path_at], rest[path_at:]
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            netloc = (userinfo.split(":", 1)[0] + (":***" if ":" in userinfo else "") + "@" + host)
        return scheme + netloc + tail.split("?", 1)[0].split("#", 1)[0]

    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)(\S+)", hide, text)


def scrub(text: str, url: str | None) -> str:
    """`text` (a driver's error message, say) without the URL's password, nor any '@'-separated piece of it: a
    driver that misreads a raw '@' in a password quotes the rest of it as a host name."""
    text = without_secrets(text)
    if not url or "://" not in url:
        return text
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    for piece in sorted({password, *password.split("@")}, key=len, reverse=True):
        if len(piece) >= 2:
            text = text.replace(piece, "***")
    return text
