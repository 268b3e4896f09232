"""`promptc.lsp.framing`: the LSP stream reader, on hostile headers and bodies, and fuzzed.

Each case feeds bytes to a `Framer` (no server): a corrupt message is a `Problem`, and
every well-formed message after it comes out intact."""

from __future__ import annotations

import json
import random
import time

import pytest

from promptc.lsp.framing import MAX_LINE, Framer, Message, Problem


def frame(obj: dict, *, sep: bytes = b"\r\n\r\n", header: bytes = b"Content-Length: ") -> bytes:
    body = json.dumps(obj).encode()
    return header + str(len(body)).encode() + sep + body


def msg(i: int) -> dict:
    return {"jsonrpc": "2.0", "id": i, "method": "textDocument/hover", "params": {"text": "é" * (i % 3) + "x" * i}}


def run(data: bytes, *, chunks: int | None = None, stale: bool = False) -> tuple[list[dict], list[str]]:
    f = Framer()
    events = []
    if chunks:
        rng = random.Random(chunks)
        i = 0
        while i < len(data):
            n = rng.randint(1, chunks)
            events += f.feed(data[i : i + n])
            i += n
    else:
        events += f.feed(data)
    if stale:
        events += f.stale()
    messages = [json.loads(e.body) for e in events if isinstance(e, Message)]
    problems = [e.text for e in events if isinstance(e, Problem)]
    return messages, problems


def test_well_formed_streams_in_any_chunking():
    data = b"".join(frame(msg(i)) for i in range(20))
    for chunks in (None, 1, 7, 300):
        messages, problems = run(data, chunks=chunks)
        assert messages == [msg(i) for i in range(20)] and problems == []


@pytest.mark.parametrize(
    "variant",
    [
        dict(sep=b"\n\n"),  # bare newlines
        dict(header=b"Content-Length:  "),  # two spaces
        dict(header=b"content-length: "),  # lower case
        dict(header=b"CONTENT-LENGTH :\t"),  # space before the colon, a tab after
        dict(header=b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: "),
    ],
    ids=["lf", "double-space", "lower-case", "odd-spacing", "content-type"],
)
def test_lenient_headers_are_read(variant):
    data = frame(msg(1), **variant) + frame(msg(2))
    messages, problems = run(data)
    assert messages == [msg(1), msg(2)] and problems == []


@pytest.mark.parametrize(
    "bad, problem",
    [
        (b"Content-Length: 9999999999999\r\n\r\n{\"jsonrpc\": \"2.0\"}", "is over the limit"),
        (b"Content-Length: 99999999999999999999999\r\n\r\n{}", "is over the limit"),
        (b"Content-Length: abc\r\n\r\n{\"jsonrpc\": \"2.0\", \"id\": 9}", "'abc' is not a byte count"),
        (b"Content-Length: -5\r\n\r\n{}", "is not a byte count"),
        (b"Content-Type: x\r\n\r\n{\"a\": 1}", "without a Content-Length"),
        (b"garbage line\r\n", "not a header line"),
        (b"Content-Length: 4\r\n\r\nnope", "not JSON"),
        (b"X" * (MAX_LINE + 10), "header line over"),
        (b"".join(b"X-Pad: %d\r\n" % i for i in range(40)), "more than 32 header lines"),
    ],
    ids=["huge", "overflow", "abc", "negative", "no-length", "garbage", "not-json", "long-line", "many-headers"],
)
def test_a_bad_message_is_a_problem_and_the_next_ones_are_read(bad, problem):
    data = frame(msg(1)) + bad + frame(msg(2)) + frame(msg(3))
    for chunks in (None, 5):
        messages, problems = run(data, chunks=chunks)
        assert messages[0] == msg(1) and messages[-2:] == [msg(2), msg(3)], messages
        assert any(problem in p for p in problems), problems


def test_wrong_lengths_recover_every_message():
    body = json.dumps(msg(2)).encode()
    too_long = b"Content-Length: %d\r\n\r\n" % (len(body) + 30) + body
    too_short = b"Content-Length: %d\r\n\r\n" % (len(body) - 10) + body
    messages, problems = run(frame(msg(1)) + too_long + frame(msg(3)) + frame(msg(4)))
    assert messages == [msg(1), msg(2), msg(3), msg(4)] and any("did not match" in p for p in problems)
    messages, problems = run(frame(msg(1)) + too_short + frame(msg(3)) + frame(msg(4)))
    assert messages == [msg(1), msg(3), msg(4)] and problems


def test_a_body_shorter_than_announced_ends_when_the_stream_goes_idle():
    body = json.dumps(msg(5)).encode()
    f = Framer()
    assert f.feed(b"Content-Length: 1000\r\n\r\n" + body) == [] and f.pending()
    events = f.stale()
    assert Message(body) in events and any(isinstance(e, Problem) and "1000 announced" in e.text for e in events)
    assert not f.pending()
    assert f.feed(frame(msg(6))) == [Message(json.dumps(msg(6)).encode())]


def test_memory_stays_bounded_by_the_limit():
    f = Framer(max_body=1000)
    events = f.feed(b"Content-Length: 1001\r\n\r\n" + b"x" * 100_000)
    assert any("over the limit" in e.text for e in events if isinstance(e, Problem))
    assert len(f.buf) <= 100  # skipping keeps only a tail where a header could start


# -- fuzz: corrupt one header of a stream, every other message must come through ------------------


def _corruptions(rng: random.Random, body: bytes) -> bytes:
    n = len(body)
    choices = [
        lambda: b"Content-Length: %d\r\n\r\n" % rng.choice([9999999999999, 10**22, 2**63, 2**64 + 1]) + body,
        lambda: b"Content-Length: %s\r\n\r\n" % rng.choice([b"abc", b"", b"1e3", b"0x10", b"12 34", b"\xff\xfe"]) + body,
        lambda: b"Content-Length: %d\r\n\r\n" % max(n - rng.randint(1, n - 1), 1) + body,
        lambda: b"Content-Length: %d\r\n\r\n" % (n + rng.randint(1, 200)) + body,
        lambda: b"Content-Lenght: %d\r\n\r\n" % n + body,
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))),
        lambda: b"\r\n" * rng.randint(1, 5) + b"Content-Length: %d\r\n\r\n" % n + body,
        lambda: b"Content-Length: %d\r\n\r\n" % n + body[: rng.randint(0, n)],
    ]
    return rng.choice(choices)()


@pytest.mark.parametrize("seed", range(40))
def test_fuzzed_header_corruption(seed):
    rng = random.Random(seed)
    t0 = time.perf_counter()
    good = [msg(i) for i in range(12)]
    stream, expect = b"", []
    for i, m in enumerate(good):
        if rng.random() < 0.4:
            stream += _corruptions(rng, json.dumps(msg(100 + i)).encode())
        sep = rng.choice([b"\r\n\r\n", b"\n\n", b"\r\n\r\n"])
        header = rng.choice([b"Content-Length: ", b"content-length: ", b"Content-Length:  "])
        stream += frame(m, sep=sep, header=header)
        expect.append(m)
    messages, _problems = run(stream, chunks=rng.choice([None, 1, 64, 4096]), stale=True)
    recovered = [m for m in messages if m["id"] < 100]
    assert recovered == expect, seed  # every good message, in order, once
    assert time.perf_counter() - t0 < 5
