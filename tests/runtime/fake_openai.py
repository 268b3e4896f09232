"""A minimal OpenAI-compatible chat server on 127.0.0.1 (stdlib only), for endpoint tests.

    with FakeOpenAI(lambda body: "LOC") as srv:
        srv.base_url            # "http://127.0.0.1:PORT/v1"
        srv.requests            # [(headers: dict, body: dict), ...] as received

`answer(body)` gives the assistant's text for a request body (the parsed JSON), or a
(status, payload) pair for an error reply, or a `Reply` for anything else (headers such
as Retry-After, a raw body, a body sent one chunk at a time). `answer` may also take the
request's headers as a second argument (`FakeOpenAI(fn, with_headers=True)`), as a proxy
that echoes them would.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from attrs import define, field


@define
class Reply:
    """A raw reply: `body` bytes (default: a chat completion of `text` with `usage`), sent
    in `chunk`-byte pieces `drip` seconds apart after the headers."""

    status: int = 200
    text: str = "ok"
    usage: Any = None
    headers: dict = field(factory=dict)
    body: bytes | None = None
    drip: float = 0.0
    chunk: int = 1


def completion(text: Any, model: str = "fake", usage: Any = None) -> bytes:
    return json.dumps({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage if usage is not None else {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }).encode()


class FakeOpenAI:
    def __init__(self, answer: Callable[..., Any], with_headers: bool = False) -> None:
        self.answer = answer
        self.requests: list[tuple[dict, dict]] = []
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((headers, body))
                reply = outer.answer(body, headers) if with_headers else outer.answer(body)
                if isinstance(reply, tuple):  # (status, error payload): an error reply
                    reply = Reply(status=reply[0], body=json.dumps(reply[1]).encode())
                elif not isinstance(reply, Reply):
                    reply = Reply(text=reply)
                self.send(reply, body.get("model", "fake"))

            def send(self, reply: Reply, model: str) -> None:
                payload = reply.body if reply.body is not None else completion(reply.text, model, reply.usage)
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    if not reply.drip:
                        self.wfile.write(payload)
                        return
                    for i in range(0, len(payload), reply.chunk):
                        if outer.stopping.is_set():
                            return
                        self.wfile.write(payload[i:i + reply.chunk])
                        self.wfile.flush()
                        time.sleep(reply.drip)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda *a: None  # a client that hung up is no news
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
