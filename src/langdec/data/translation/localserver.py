"""A local HTTP server that speaks the two chat APIs condition 5 uses, for offline runs and fault tests.

It serves `POST /v1/chat/completions` (OpenAI and any compatible server such as
vLLM) and `POST /v2/chat` (Cohere), so the real `openai` and `cohere` SDK clients
talk to it unchanged. It is a stand-in for a paid API, not a language model: it
reads the units of a langdec translation request and answers deterministically
from a small glossary (unknown identifier words get a stable made-up word in the
target script), keeping every placeholder. It can inject faults, chosen per
request content so a test knows what to expect: rate limits (429 + Retry-After),
server errors (500), slow answers (longer than the client's timeout), and
malformed answers (once, or every time for a share of files).

    langdec translate-server --port 8011 --fault-rate-limit 0.2
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from langdec.data.translation import prompt

GLOSSARY: dict[str, dict[str, str]] = {
    "zh": {
        "read": "读取",
        "write": "写入",
        "file": "文件",
        "path": "路径",
        "name": "名称",
        "value": "值",
        "line": "行",
        "lines": "行列",
        "count": "计数",
        "total": "总计",
        "get": "获取",
        "set": "设置",
        "list": "列表",
        "item": "项",
        "items": "项目",
        "key": "键",
        "data": "数据",
        "result": "结果",
        "parse": "解析",
        "header": "头部",
        "text": "文本",
        "the": "",
        "a": "一个",
        "of": "的",
        "is": "是",
        "and": "和",
        "to": "到",
        "in": "在",
        "for": "为",
        "from": "从",
        "return": "返回",
        "number": "数字",
        "error": "错误",
        "missing": "缺少",
        "every": "每个",
        "new": "新",
        "size": "大小",
        "start": "开始",
        "end": "结束",
        "index": "索引",
        "message": "消息",
        "node": "节点",
        "parser": "解析器",
        "check": "检查",
    },
    "es": {
        "read": "leer",
        "write": "escribir",
        "file": "archivo",
        "path": "ruta",
        "name": "nombre",
        "value": "valor",
        "line": "linea",
        "lines": "lineas",
        "count": "cuenta",
        "total": "total",
        "get": "obtener",
        "set": "fijar",
        "list": "lista",
        "item": "elemento",
        "items": "elementos",
        "key": "clave",
        "data": "datos",
        "result": "resultado",
        "parse": "analizar",
        "header": "cabecera",
        "text": "texto",
        "the": "el",
        "a": "un",
        "of": "de",
        "is": "es",
        "and": "y",
        "to": "a",
        "in": "en",
        "for": "para",
        "from": "desde",
        "return": "devolver",
        "number": "numero",
        "error": "error",
        "missing": "falta",
        "every": "cada",
        "new": "nuevo",
        "size": "tamano",
        "start": "inicio",
        "end": "fin",
        "index": "indice",
        "message": "mensaje",
        "node": "nodo",
        "parser": "analizador",
        "check": "comprobar",
    },
    "ur": {
        "read": "پڑھو",
        "write": "لکھو",
        "file": "فائل",
        "path": "راستہ",
        "name": "نام",
        "value": "قدر",
        "line": "سطر",
        "lines": "سطریں",
        "count": "گنتی",
        "total": "کل",
        "get": "حاصل",
        "set": "مقرر",
        "list": "فہرست",
        "item": "عنصر",
        "items": "اشیاء",
        "key": "کلید",
        "data": "ڈیٹا",
        "result": "نتیجہ",
        "parse": "تجزیہ",
        "header": "سرخی",
        "text": "عبارت",
        "the": "",
        "a": "ایک",
        "of": "کا",
        "is": "ہے",
        "and": "اور",
        "to": "کو",
        "in": "میں",
        "for": "کے_لیے",
        "from": "سے",
        "return": "واپس",
        "number": "عدد",
        "error": "غلطی",
        "missing": "غائب",
        "every": "ہر",
        "new": "نیا",
        "size": "سائز",
        "start": "آغاز",
        "end": "اختتام",
        "index": "اشاریہ",
        "message": "پیغام",
        "node": "گرہ",
        "parser": "تجزیہ_کار",
        "check": "جانچ",
    },
}
# letters for made-up words, per script (a stable stand-in for words outside the glossary)
ALPHABETS = {
    "zh": "数据值名称文件路径结果读写行列项键表节点消息索引开始结束检查计算处理对象类型函数参数",
    "ur": "ابپتٹثجچحخدڈذرڑزژسشصضطظعغفقکگلمنوہھءیے",
    "hi": "कखगघचछजझटठडढतथदधनपफबभमयरलवशसह",
    "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
}
_WORD = re.compile(r"[A-Za-z]+")
_KEEP = re.compile(r"\{[^{}]*\}|%(\([^)]*\))?[-#0 +]*\d*(\.\d+)?[diouxXeEfFgGcrsa%]")


def _made_up(word: str, lang: str) -> str:
    letters = ALPHABETS.get(lang)
    if not letters:  # Latin-script languages: the English word, marked as translated
        return word.lower() + "o"
    digest = hashlib.sha256(f"{lang}:{word.lower()}".encode()).digest()
    return "".join(letters[b % len(letters)] for b in digest[: 2 + len(word) % 3])


def _word(word: str, lang: str) -> str:
    table = GLOSSARY.get(lang, {})
    return table.get(word.lower(), _made_up(word, lang))


def translate_identifier(name: str, lang: str) -> str:
    core = name.strip("_")
    parts = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", core) or [core]
    words = [w for w in (_word(p, lang) if not p.isdigit() else p for p in parts) if w]
    new = "_".join(words) or _made_up(core, lang)
    if new[0].isdigit():
        new = "_" + new
    return (
        name[: len(name) - len(name.lstrip("_"))] + new + ("_" if name.endswith("_") and not new.endswith("_") else "")
    )


def translate_text(text: str, lang: str) -> str:
    """Word-by-word from the glossary, leaving placeholders, digits and punctuation where they are."""
    pieces, last = [], 0
    for m in _KEEP.finditer(text):
        pieces.append(
            _WORD.sub(lambda w: _word(w.group(0), lang) if lang in GLOSSARY else w.group(0), text[last : m.start()])
        )
        pieces.append(m.group(0))
        last = m.end()
    pieces.append(_WORD.sub(lambda w: _word(w.group(0), lang) if lang in GLOSSARY else w.group(0), text[last:]))
    return "".join(pieces)


def answer(content: str) -> str:
    lang, request_units = prompt.read_request(content)
    out = {}
    for key, unit in request_units.items():
        out[key] = (
            translate_identifier(unit["text"], lang)
            if unit["kind"] == "identifier"
            else translate_text(unit["text"], lang)
        )
    return json.dumps(out, ensure_ascii=False)


@dataclass
class Faults:
    """Shares of requests that fail, chosen by a hash of the request's units (stable across runs)."""

    rate_limit: float = 0.0  # 429 on the first `repeat` arrivals
    server_error: float = 0.0  # 500 on the first `repeat` arrivals
    slow: float = 0.0  # answer after `slow_seconds` on the first arrival
    malformed: float = 0.0  # a malformed answer to the first clean arrival, then good ones
    malformed_always: float = 0.0  # always malformed: the file must end up excluded
    repeat: int = 1
    slow_seconds: float = 3.0
    retry_after: float = 0.01

    def pick(self, content_key: str, kind: str) -> bool:
        share = getattr(self, kind)
        if share <= 0:
            return False
        roll = int(hashlib.sha256(f"{kind}:{content_key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return roll < share


@dataclass
class ServerStats:
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    authorised: int = 0


class LocalChatServer:
    """Run in a background thread: `with LocalChatServer(api_key="k") as server: server.url`."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None, faults: Faults | None = None
    ) -> None:
        self.api_key = api_key
        self.faults = faults or Faults()
        self.stats = ServerStats()
        self._arrivals: dict[str, int] = {}
        self._clean: dict[str, int] = {}
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalChatServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="langdec-chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "LocalChatServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _count(self, status: int, fault: str | None = None) -> None:
        with self._lock:
            self.stats.by_status[str(status)] = self.stats.by_status.get(str(status), 0) + 1
            if fault:
                self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1

    def _decide(self, content: str) -> str | None:
        """Which fault (if any) this arrival gets; transient ones only on the first `repeat` arrivals."""
        _, request_units = prompt.read_request(content)
        key = hashlib.sha256(json.dumps(request_units, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        with self._lock:
            self._arrivals[key] = self._arrivals.get(key, 0) + 1
            arrival = self._arrivals[key]
        f = self.faults
        for kind in ("rate_limit", "server_error"):
            if arrival <= f.repeat and f.pick(key, kind):
                return kind
        if arrival == 1 and f.pick(key, "slow"):
            return "slow"
        if f.pick(key, "malformed_always"):
            return "malformed_always"
        if f.pick(key, "malformed"):
            with self._lock:
                self._clean[key] = self._clean.get(key, 0) + 1
                if self._clean[key] == 1:
                    return "malformed"
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this server (the HTTP server makes one handler per request)."""
        return type("Handler", (_ChatHandler,), {"chat": self})


class _ChatHandler(BaseHTTPRequestHandler):
    """One request to a `LocalChatServer`, which `chat` names (set by `LocalChatServer._handler`)."""

    chat: LocalChatServer

    def log_message(self, *args) -> None:  # quiet: tests and the ladder read their own logs
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and went away, as a slow-answer test intends

    def do_GET(self) -> None:
        stats = self.chat.stats
        if self.path.rstrip("/") == "/stats":
            self._send(
                200,
                {
                    "requests": stats.requests,
                    "by_status": stats.by_status,
                    "faults": stats.faults,
                    "authorised": stats.authorised,
                },
            )
        else:
            self._send(404, {"message": f"no route {self.path}"})

    def do_POST(self) -> None:
        cohere = self.path.rstrip("/").endswith("/v2/chat")
        if not cohere and not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"message": f"no route {self.path}"})
            return
        if not self._authorised(cohere):
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        messages = body.get("messages", [])
        content = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        try:
            fault = self.chat._decide(content)
            text = answer(content)
        except (ValueError, KeyError) as exc:
            self.chat._count(400)
            self._send(400, {"message": f"not a langdec translation request: {exc}"})
            return
        if fault in ("rate_limit", "server_error"):
            self._send_failure(fault, cohere)
            return
        self._send_answer(cohere, body, content, self._answer_with_fault(fault, text, content))

    def _authorised(self, cohere: bool) -> bool:
        """Counts the request; False, after answering 401, when the server wants a key and got another."""
        server = self.chat
        with server._lock:
            server.stats.requests += 1
        expected = f"Bearer {server.api_key}" if server.api_key else None
        if expected and self.headers.get("Authorization") != expected:
            server._count(401)
            self._send(
                401,
                {"message": "invalid api token"}
                if cohere
                else {"error": {"message": "invalid api key", "type": "invalid_request_error"}},
            )
            return False
        with server._lock:
            server.stats.authorised += bool(expected)
        return True

    def _send_failure(self, fault: str, cohere: bool) -> None:
        status = 429 if fault == "rate_limit" else 500
        self.chat._count(status, fault)
        message = "too many requests" if status == 429 else "internal error"
        self._send(
            status,
            {"message": message} if cohere else {"error": {"message": message, "type": fault}},
            {"Retry-After": str(self.chat.faults.retry_after)} if status == 429 else None,
        )

    def _answer_with_fault(self, fault: str | None, text: str, content: str) -> str:
        """The answer as the fault leaves it: late (slow), or one of three malformed answers, or as it was."""
        if fault == "slow":
            self.chat._count(200, fault)
            time.sleep(self.chat.faults.slow_seconds)
        elif fault:
            self.chat._count(200, fault)
            text = [
                "Sure! Here is the translation you asked for.",
                text[: len(text) // 2],
                '{"i0": ["not", "a string"]}',
            ][len(content) % 3]
        else:
            self.chat._count(200)
        return text

    def _send_answer(self, cohere: bool, body: dict, content: str, text: str) -> None:
        tokens_in = max(1, len(json.dumps(body.get("messages", []), ensure_ascii=False)) // 4)
        tokens_out = max(1, len(text) // 4)
        if cohere:
            self._send(
                200,
                {
                    "id": hashlib.sha1(content.encode()).hexdigest(),
                    "finish_reason": "COMPLETE",
                    "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                    "usage": {
                        "billed_units": {"input_tokens": tokens_in, "output_tokens": tokens_out},
                        "tokens": {"input_tokens": tokens_in, "output_tokens": tokens_out},
                    },
                },
            )
        else:
            self._send(
                200,
                {
                    "id": "chatcmpl-" + hashlib.sha1(content.encode()).hexdigest()[:12],
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", ""),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": tokens_in,
                        "completion_tokens": tokens_out,
                        "total_tokens": tokens_in + tokens_out,
                    },
                },
            )
