"""`ast.parse` behind one lock.

CPython 3.11 keeps the AST converter's recursion depth in state shared by the interpreter's threads
(CPython issue gh-106905), so two threads parsing at once can fail with "SystemError: AST constructor
recursion depth mismatch". Condition 5 translates files in worker threads, each parsing its code, so every
parse in langdec goes through here; a parse takes milliseconds, the network request around it seconds.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str) -> ast.Module:
    with _LOCK:
        return ast.parse(source)
