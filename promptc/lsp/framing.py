"""The Language Server Protocol's framing (`Content-Length: N\\r\\n\\r\\n` + N bytes of JSON),
read so that no client can stop the server.

pygls' own reader trusts the header: it reads the announced length in one allocation
(`Content-Length: 9999999999999` is a MemoryError, a longer number an OverflowError), and
after one malformed header it never finds a message boundary again. `Framer` is an
incremental parser that

- reads header lines ending in `\\r\\n` or a bare `\\n`, with names in any case and any
  spaces around the colon and the value (`content-length:  52`); other headers
  (`Content-Type`) are ignored;
- refuses a length that is not a number or is over `max_body` (64 MiB by default) with a
  `Problem`, never allocating it;
- after any problem, **resynchronises**: skips to the next `Content-Length` header
  wherever it is in the stream (a body that was not newline-terminated runs into it);
- checks the body is JSON; when it is not because the announced length was wrong, takes
  the JSON value the body starts with and reads on from its end (too long a length), or
  skips to the next header, which may start inside what was read (too short, or cut);
- never waits for bytes that are not coming: `stale()`, called when the stream has been
  idle for `IDLE_SECONDS` inside a body, ends that body with what arrived.

Header lines are bounded (`max_line`, `max_headers`), so memory is bounded by `max_body`
plus one read. `run_stream` drives a `Framer` from a file descriptor on an asyncio loop
(the read happens in a thread) and hands each message to a callback; it returns at end
of stream. Problems are logged (and passed to `on_problem`), never raised.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from typing import Callable

from attrs import frozen

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
MAX_LINE = 8 * 1024
MAX_HEADERS = 32
IDLE_SECONDS = 2.0

_HEADER = re.compile(rb"[ \t]*([A-Za-z0-9_-]+)[ \t]*:[ \t]*(.*?)[ \t]*")
_LENGTH_NAME = re.compile(rb"content-length[ \t]*:", re.IGNORECASE)
_KEEP = 64  # bytes kept while skipping, so a header split between two reads is still found


@frozen
class Message:
    """One message's JSON text (decode it with the protocol's own hooks)."""

    body: bytes


@frozen
class Problem:
    """Something wrong in the stream, said in one line; the framer has already recovered."""

    text: str


Event = Message | Problem


class Framer:
    """Bytes in (`feed`), messages and problems out; see the module docstring."""

    def __init__(self, *, max_body: int = MAX_BODY, max_line: int = MAX_LINE, max_headers: int = MAX_HEADERS):
        self.max_body, self.max_line, self.max_headers = max_body, max_line, max_headers
        self.buf = bytearray()
        self.state = "headers"  # "headers", "body" or "skip"
        self.length: int | None = None
        self.headers = 0

    def pending(self) -> bool:
        """Is a message partly read (so that an idle stream means a short body)?"""
        return self.state == "body" and bool(self.buf)

    def feed(self, data: bytes) -> list[Event]:
        self.buf += data
        out: list[Event] = []
        while self._step(out):
            pass
        return out

    def stale(self) -> list[Event]:
        """The stream went idle inside a body: end the body with what arrived."""
        if not self.pending():
            return []
        out: list[Event] = []
        announced = self.length
        self.length = len(self.buf)
        self._body(out, announced)
        while self._step(out):
            pass
        return out

    def finish(self) -> list[Event]:
        """End of stream: a message cut short is a problem (after trying what arrived)."""
        out = self.stale()
        inside = (self.state == "headers" and self.headers > 0) or self.state == "body" or bool(self.buf.strip())
        if inside:
            out.append(Problem("the stream ended inside a message"))
        self.buf.clear()
        return out

    # -- one step of the state machine: False when it needs more bytes ---------------------

    def _step(self, out: list[Event]) -> bool:
        if self.state == "skip":
            return self._skip()
        if self.state == "body":
            if len(self.buf) < (self.length or 0):
                return False
            self._body(out, self.length)
            return True
        end = self.buf.find(b"\n", 0, self.max_line + 1)
        if end < 0:
            if len(self.buf) > self.max_line:
                self._resync(out, f"a header line over {self.max_line} bytes", drop=1)
                return True
            return False
        line = bytes(self.buf[:end]).rstrip(b"\r")
        del self.buf[: end + 1]
        self._header(out, line)
        return True

    def _header(self, out: list[Event], line: bytes) -> None:
        if not line.strip():
            if self.headers == 0:
                return  # a stray blank line between messages
            if self.length is None:
                self._resync(out, "a message without a Content-Length header")
                return
            self.state = "body"
            return
        m = _HEADER.fullmatch(line)
        glued = _LENGTH_NAME.search(line)
        if m is None or (glued is not None and glued.start() > len(line) - len(line.lstrip())):
            # not a header; a header glued to the end of a body is found again by the skip
            self.buf[0:0] = line[1:] + b"\n"
            self._resync(out, f"not a header line: {_shown(line)}")
            return
        self.headers += 1
        if self.headers > self.max_headers:
            self._resync(out, f"more than {self.max_headers} header lines")
            return
        if m.group(1).lower() != b"content-length":
            return
        value = m.group(2)
        if not value.isdigit():
            self._resync(out, f"Content-Length {_shown(value)} is not a byte count")
            return
        if len(value) > 18 or int(value) > self.max_body:
            self._resync(out, f"Content-Length {_shown(value, 30)[1:-1]} is over the limit ({self.max_body} bytes)")
            return
        self.length = int(value)

    def _body(self, out: list[Event], announced: int | None) -> None:
        n = self.length or 0
        body = bytes(self.buf[:n])
        del self.buf[:n]
        self._reset()
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            pass
        else:
            if announced != n:
                out.append(Problem(f"Content-Length {announced} announced, {n} bytes arrived"))
            out.append(Message(body))
            return
        first = _leading_json(body)
        if first is not None:  # the announced length ran past the message: read on from its end
            out.append(Problem(f"Content-Length {announced} did not match the message ({len(first)} bytes)"))
            out.append(Message(first))
            self.buf[0:0] = body[len(first):]
            return
        # too short a length, a cut body, garbage: the next header may start inside it
        self.buf[0:0] = body
        self._resync(out, f"a message body that is not JSON ({len(body)} bytes: {_shown(body)})")

    def _resync(self, out: list[Event], why: str, drop: int = 0) -> None:
        del self.buf[:drop]
        out.append(Problem(f"{why}; skipping to the next Content-Length header"))
        self._reset()
        self.state = "skip"

    def _skip(self) -> bool:
        m = _LENGTH_NAME.search(self.buf)
        if m is None:
            del self.buf[: max(len(self.buf) - _KEEP, 0)]
            return False
        del self.buf[: m.start()]
        self.state = "headers"
        return True

    def _reset(self) -> None:
        self.state, self.length, self.headers = "headers", None, 0


def _leading_json(body: bytes) -> bytes | None:
    """The bytes of the JSON object `body` starts with, when more follows it; else None."""
    text = body.decode("utf-8", "surrogateescape")
    start = len(text) - len(text.lstrip())
    if not text[start:].startswith("{"):
        return None
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        return None
    return text[:end].encode("utf-8", "surrogateescape") if end < len(text) else None


def _shown(data: bytes, limit: int = 60) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return repr(text + ("..." if len(data) > limit else ""))


async def run_stream(
    fd: int,
    on_message: Callable[[bytes], None],
    on_problem: Callable[[str], None] = lambda _: None,
    *,
    framer: Framer | None = None,
    idle: float = IDLE_SECONDS,
    chunk: int = 65536,
) -> None:
    """Read the stream `fd` until it ends, handing each message body to `on_message`."""
    framer = framer or Framer()
    loop = asyncio.get_running_loop()

    def emit(events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, Message):
                on_message(ev.body)
            else:
                log.error("protocol stream: %s", ev.text)
                on_problem(ev.text)

    read = loop.run_in_executor(None, os.read, fd, chunk)
    while True:
        done, _ = await asyncio.wait({read}, timeout=idle if framer.pending() else None)
        if not done:
            emit(framer.stale())
            continue
        try:
            data = read.result()
        except OSError as e:
            log.error("protocol stream: reading failed: %s", e)
            data = b""
        if not data:
            emit(framer.finish())
            log.info("protocol stream: the client closed the connection")
            return
        emit(framer.feed(data))
        read = loop.run_in_executor(None, os.read, fd, chunk)
