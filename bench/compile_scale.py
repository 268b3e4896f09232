"""How the compiler scales: time per pass on synthetic workflows.

Cases:
- `chain N`: N nodes built directly as IR, a chain of llm -> call -> prim nodes where
  every third node also reads the value two steps back (diamonds);
- `loop S`: a `loop max S` agent body of 12 nodes (llm, calls, prims, `break if`)
  unrolled into S time steps;
- `pflow N`: the same kind of chain written as `.pflow` text and compiled end to end
  (parse and lowering included, in the `front` column);
- shapes that were quadratic in the front end, as `.pflow` text compiled end to end:
  `ifs N` (N one-line `if`s over N variables: the `if` lowering once snapshot every
  variable in scope), `enum N` (an llm returning an enum of N labels) and `record N` (a
  record of N fields: duplicate labels and fields were found by list scans).

Run: `python bench/compile_scale.py` (add `--quick` for the small sizes only). The aims:
10,000 nodes through all passes in well under a second; the `.pflow` front end (parse and
lowering) of 10,000 nodes in at most 0.5 s; `ifs 10000`, `enum 100000` and `record 40000`
compiled in under 2 s each (these two judged on CPU time, printed under the table with the
wall time: a shared machine's wall clock counts other processes too); time per node flat
as sizes grow (every stage is linear).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptc.errors import Span  # noqa: E402
from promptc.ir import Function, LlmDef, Loop, Message, Model, Node, Param, Program, Workflow  # noqa: E402
from promptc.compiler import Loader  # noqa: E402
from promptc.passes.pipeline import PASS_NAMES, run_pipeline  # noqa: E402
from promptc.types import BOOL, TEXT  # noqa: E402

FILE = "bench.pflow"


def _decls() -> dict:
    return dict(
        models=(Model("task", "scripted/echo"),),
        params=(
            Param("instr", "prompt", True, "the instruction", "Rewrite the text."),
            Param("fmt", "prompt", True, "the format", "One line."),
            Param("shots", "demos", True, max_demos=2),
        ),
        functions=(Function("strip", "std.text", "strip"), Function("concat", "std.text", "concat")),
        llms=(
            LlmDef(
                "step", (("x", TEXT),), TEXT, "task",
                (Message("system", "{instr}\n{fmt}"), Message("user", "Text: {x}")), demos="shots",
            ),
        ),
    )


def _span(i: int) -> Span:
    return Span(FILE, i + 1, 1)


def chain(n: int) -> Program:
    nodes = [Node("x", "input", (), "x", span=_span(0))]
    prev, prev2 = "x", "x"
    for i in range(1, n):
        name = f"v{i}"
        kind = i % 3
        if kind == 1:
            node = Node(name, "llm", (prev,), "step", span=_span(i))
        elif kind == 2:
            node = Node(name, "call", (prev,), "strip", span=_span(i))
        else:  # a diamond: join the last value with the one two steps back
            node = Node(name, "call", (prev, prev2), "concat", span=_span(i))
        nodes.append(node)
        prev2, prev = prev, name
    wf = Workflow("bench", (("x", TEXT),), TEXT, tuple(nodes), prev)
    return Program(FILE, "0" * 64, workflow=wf, **_decls())


def looped(steps: int) -> Program:
    ph = "h.ph"
    body = [
        Node("t", "llm", (ph,), "step", span=_span(10)),
        Node("u", "call", ("t",), "strip", span=_span(11)),
        Node("w", "call", (ph, "u"), "concat", span=_span(12)),
        Node("a", "llm", ("w",), "step", span=_span(13)),
        Node("b", "call", ("a",), "strip", span=_span(14)),
        Node("c", "call", ("w", "b"), "concat", span=_span(15)),
        Node("d", "const", (), "FINISH", span=_span(16)),
        Node("e", "prim", ("c", "d"), "add", span=_span(17)),
        Node("f", "call", ("e",), "strip", span=_span(18)),
        Node("k", "const", (), "done", span=_span(19)),
        Node("g", "prim", ("b", "k"), "eq", span=_span(20)),
        Node("stop", "prim", ("g", "g"), "and", span=_span(21)),
    ]
    lp = Loop("h", "max", steps, None, (("h", "x", ph),), tuple(body), (("h", "f"),), "stop", (("h", "h.out"),))
    nodes = (
        Node("x", "input", (), "x", span=_span(0)),
        Node("L", "loop", (), "h", span=_span(1), loop=lp),
        Node("out", "call", ("h.out",), "strip", span=_span(30)),
    )
    wf = Workflow("bench", (("x", TEXT),), TEXT, nodes, "out")
    return Program(FILE, "0" * 64, workflow=wf, **_decls())


def pflow_chain(n: int) -> str:
    lines = [
        'use std.text { strip, concat }',
        'model task = "scripted/echo"',
        'param instr: prompt trainable "the instruction" = "Rewrite the text."',
        'param fmt: prompt trainable "the format" = "One line."',
        "param shots: demos(max = 2) trainable",
        "llm step(x: text) -> text via task {",
        '  system "{instr}\\n{fmt}"',
        "  demos shots",
        '  user "Text: {x}"',
        "}",
        "workflow bench(x: text) -> text {",
    ]
    prev, prev2 = "x", "x"
    for i in range(1, n):
        kind = i % 3
        expr = f"step({prev})" if kind == 1 else f"strip({prev})" if kind == 2 else f"concat({prev}, {prev2})"
        lines.append(f"  let v{i} = {expr}")
        prev2, prev = prev, f"v{i}"
    lines += [f"  return {prev}", "}"]
    return "\n".join(lines) + "\n"


def measure(program: Program, repeat: int = 3) -> tuple[dict, Program]:
    best: dict | None = None
    out = program
    for _ in range(repeat):
        t: dict = {}
        t0 = time.perf_counter()
        out = run_pipeline(program, timings=t, loader=Loader())
        t["total"] = time.perf_counter() - t0
        if best is None or t["total"] < best["total"]:
            best = t
    assert best is not None
    return best, out


def pflow_ifs(n: int) -> str:
    """N variables, then one one-line `if` assigning each of them."""
    lines = ["use std.text { strip }", "workflow bench(x: text, c: bool) -> text {"]
    lines += [f"  let v{i} = strip(x)" for i in range(n)]
    lines += [f"  if c {{ v{i} = strip(v{i}) }}" for i in range(n)]
    lines += ["  return v0", "}"]
    return "\n".join(lines) + "\n"


def pflow_enum(n: int) -> str:
    labels = ", ".join(f"L{i}" for i in range(n))
    return (
        'model task = "scripted/echo"\n'
        f'llm pick(x: text) -> enum[{labels}] via task {{ user "{{x}}" }}\n'
        "workflow bench(x: text) -> text {\n  return pick(x)\n}\n"
    )


def pflow_record(n: int) -> str:
    fields = ", ".join(f"f{i}: text" for i in range(n))
    return (
        'model task = "scripted/echo"\n'
        f'llm fill(x: text) -> {{{fields}}} via task {{ user "{{x}}" }}\n'
        "workflow bench(x: text) -> text {\n  return fill(x).f0\n}\n"
    )


SHAPES = {"ifs": pflow_ifs, "enum": pflow_enum, "record": pflow_record}


def measure_pflow(n: int, repeat: int = 3, text: str | None = None) -> tuple[dict, Program] | None:
    try:
        from promptc.compiler import compile_source
        from promptc.frontend.lower import lower
        from promptc.frontend.parser import parse
    except ImportError:
        return None
    text = pflow_chain(n) if text is None else text
    best = None
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        lowered = lower(parse(text, FILE))
        front = time.perf_counter() - t0
        c1 = time.process_time()
        t, out = measure(lowered, repeat=1)
        t["front"] = front
        t["total"] += front
        t["front_cpu"], t["cpu"] = c1 - c0, time.process_time() - c0
        if best is None or t["total"] < best[0]["total"]:
            best = (t, out)
    compile_source(text, FILE)  # the public entry point agrees
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    opts = ap.parse_args()
    sizes = (100, 1_000) if opts.quick else (100, 1_000, 10_000)
    steps = (1, 10) if opts.quick else (1, 10, 100)
    rows = []
    for n in sizes:
        p = chain(n)
        t, out = measure(p)
        rows.append((f"chain {n}", len(p.nodes), len(out.nodes), t))
    for s in steps:
        p = looped(s)
        t, out = measure(p)
        rows.append((f"loop {s} steps", 15, len(out.nodes), t))
    for n in sizes:
        r = measure_pflow(n)
        if r is not None:
            t, out = r
            rows.append((f"pflow {n}", n, len(out.nodes), t))
    shapes = {"ifs": 1_000, "enum": 10_000, "record": 4_000} if opts.quick else {"ifs": 10_000, "enum": 100_000, "record": 40_000}
    for shape, n in shapes.items():
        r = measure_pflow(n, text=SHAPES[shape](n))
        if r is not None:
            t, out = r
            rows.append((f"{shape} {n}", n, len(out.nodes), t))  # nodes in: the size of the shape

    cols = ["front", *PASS_NAMES, "verify", "total"]
    header = ["case", "nodes in", "nodes out", *[f"{c} ms" for c in cols], "µs/node"]
    table = [header]
    for name, nin, nout, t in rows:
        per = t["total"] / max(nin, nout, 1) * 1e6
        table.append([name, str(nin), str(nout), *[f"{t[c] * 1e3:.1f}" if c in t else "-" for c in cols], f"{per:.1f}"])
    try:
        from rich.console import Console
        from rich.table import Table

        rt = Table(title="promptc compile scale (best of 3)")
        for i, h in enumerate(header):
            rt.add_column(h, justify="left" if i == 0 else "right")
        for row in table[1:]:
            rt.add_row(*row)
        Console(width=200).print(rt)
    except ImportError:
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for row in table:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    big = [t for name, _i, nout, t in rows if name == "chain 10000"]
    if big:
        passes_only = big[0]["total"]
        print(f"10,000 nodes through all passes (with verify): {passes_only * 1e3:.0f} ms "
              f"({'OK' if passes_only < 1 else 'over'} the 1 s aim)")
    # The aims are judged on CPU time: on a shared machine the wall clock also counts the
    # other processes (on an idle one the two agree: the compiler runs on one thread).
    front = [t for name, _i, _o, t in rows if name == "pflow 10000"]
    if front:
        f = front[0]
        print(f"10,000 nodes of .pflow through the front end (parse, lower): {f['front_cpu'] * 1e3:.0f} ms CPU, "
              f"{f['front'] * 1e3:.0f} ms wall ({'OK' if f['front_cpu'] <= 0.5 else 'over'} the 0.5 s aim); "
              f"end to end {f['cpu'] * 1e3:.0f} ms CPU, {f['total'] * 1e3:.0f} ms wall")
    for name, _i, _o, t in rows:
        if name.split()[0] in SHAPES and not opts.quick:
            print(f"{name}: {t['cpu']:.2f} s CPU, {t['total']:.2f} s wall end to end "
                  f"({'OK' if t['cpu'] < 2 else 'over'} the 2 s aim)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
