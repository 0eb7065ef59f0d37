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
            netloc = userinfo.split(":", 1)[0] + (":***" if ":" in userinfo else "") + "@" + host
        return scheme + netloc + tail.split("?", 1)[0].split("#", 1)[0]

    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)(\S+)", hide, text)


def secrets(url: str | None) -> list[str]:
    """What of `url` must never be shown, longest first: its password, each '@'-separated piece of it (a driver that
    misreads a raw '@' in a password quotes the rest of it as a host name), and the value of every query (and
    fragment) parameter (a token). Each also as percent-decoded, the form a server or a driver echoes."""
    from urllib.parse import unquote, unquote_plus

    if not url or "://" not in url:
        return []
    rest = url.split("://", 1)[1]
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    found = {piece for piece in (password, *password.split("@")) if len(piece) >= 2}
    tail = rest[len(netloc) :]
    query, fragment = tail.split("#", 1)[0].partition("?")[2], tail.partition("#")[2]
    for pair in f"{query}&{fragment}".split("&"):
        value = pair.partition("=")[2] if "=" in pair else pair
        if len(value) >= 3:  # shorter values are flags (`v=1`), not secrets, and hiding them would garble the text
            found.add(value)
    found |= {unquote(piece) for piece in found} | {unquote_plus(piece) for piece in found}
    return sorted((piece for piece in found if len(piece) >= 2), key=lambda piece: (-len(piece), piece))


def scrub(text: str, url: str | None) -> str:
    """`text` (a driver's error message, a server's echoed error body, a child's log line) without any secret of
    `url` (`secrets`), and with every URL in it stripped of its password and query (`without_secrets`)."""
    text = without_secrets(text)
    for piece in secrets(url):
        text = text.replace(piece, "***")
    return text


SECRET_URL_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_BACKEND_STORE_URI")
_factory_installed = False


def scrub_logging(variables: tuple[str, ...] = SECRET_URL_VARIABLES) -> None:
    """From now on, every log record of this process (MLflow's, SQLAlchemy's, a driver's) is scrubbed of the secrets
    of the store URLs in these environment variables as it is made, whichever handler prints it: MLflow's engine
    retries log the driver's error, which quotes the password, or the piece of it after a raw '@', as a host name."""
    import logging
    import os

    global _factory_installed
    if _factory_installed:
        return
    make = logging.getLogRecordFactory()

    def scrubbed(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        urls = [os.environ[name] for name in variables if os.environ.get(name)]
        if not any(secrets(url) for url in urls):  # the usual case: nothing to hide, nothing to do
            return record
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # arguments that do not fit the format: the handler reports that
            return record  # (never a broad except: a preemption's exception raised here must reach the command)
        clean = message
        for url in urls:
            clean = scrub(clean, url)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            for url in urls:
                text = scrub(text, url)
            record.exc_text = text  # the handler prints this instead of formatting the exception again
        return record

    logging.setLogRecordFactory(scrubbed)
    _factory_installed = True
