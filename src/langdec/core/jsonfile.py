"""JSON from a file someone else wrote: any damage is one line naming the file, never a traceback.

Python's decoder recurses once per nesting level, so a file nested a few thousand levels deep raises
RecursionError (not a JSONDecodeError) and got past every `except` that expected bad JSON to look like bad JSON.
"""

from __future__ import annotations

import json
from typing import Any

from langdec.core.errors import LangdecError


def loads(raw: bytes | str, *, where: object, what: str, fix: str = "re-download it") -> Any:
    """The parsed JSON of `raw` (bytes are UTF-8), or a LangdecError naming `where` (the file) and `fix`."""
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LangdecError(f"{where}: not a UTF-8 JSON {what} ({exc}); {fix}") from None
    except RecursionError:
        raise LangdecError(
            f"{where}: not a JSON {what} (its values are nested deeper than Python's JSON reader can "
            f"follow, which no {what} is); {fix}"
        ) from None
