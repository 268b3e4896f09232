"""The IR as text a person can read (`promptc compile --emit ir|backward|dot`).

`format_program` prints, fx-style, one line per node::

    %raw: enum[ABBR, HUM] = llm classify(%question)    @ trec.pflow:14:13  [hop#1]  if %alive@hop#1

after headers for the models, params (kind, trainable, role, a value preview, peers),
functions, and llm templates. `format_backward` prints the backward program the same way,
one line per gradient node (promptc.passes.gradient), then the peers of each trainable
param. `format_dot` gives Graphviz text of both: the forward graph (params as boxes, nodes
as ellipses, solid edges) and the backward program (the loss, and each rule's feedback
edges, dashed red, labeled with the rule).
"""

from __future__ import annotations

import json
import os

from promptc.ir import GradNode, Node, Program

PREVIEW = 60


def preview(text: str, width: int = PREVIEW) -> str:
    """A one-line, length-limited repr of a text: newlines and tabs shown escaped."""
    flat = str(text).replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    if len(flat) > width:
        flat = flat[: width - 1] + "…"
    return '"' + flat.replace('"', '\\"') + '"'


def _value(v) -> str:
    if isinstance(v, str):
        return preview(v)
    return repr(v)


def _where(node: Node) -> str:
    return f"{os.path.basename(node.span.file)}:{node.span.line}:{node.span.col}" if node.span else ""


def _rhs(n: Node) -> str:
    args = ", ".join("%" + a for a in n.args)
    if n.op == "input":
        return f"input {n.target}"
    if n.op == "const":
        return f"const {_value(n.target)}"
    if n.op in ("llm", "call"):
        return f"{n.op} {n.target}({args})"
    if n.op == "field":
        return f"field %{n.args[0]}.{n.target}"
    if n.op == "index":
        return f"index %{n.args[0]}[{n.target}]"
    if n.op == "list":
        return f"list [{args}]"
    if n.op == "prim":
        return f"{n.target}({args})"
    return f"{n.op}({args})"


def _node_lines(nodes: tuple[Node, ...], indent: str) -> list[tuple[str, str]]:
    """(statement, annotations) pairs; loops print as indented blocks."""
    rows: list[tuple[str, str]] = []
    for n in nodes:
        if n.op == "loop" and n.loop is not None:
            lp = n.loop
            kind = {"for": f"for 0..{lp.bound}", "each": f"each %{lp.items} max {lp.bound} item %{lp.item}"}
            head = f"{indent}%{n.name} = loop {lp.label} " + kind.get(lp.kind, f"max {lp.bound}")
            if lp.index:
                head += f" index %{lp.index}"
            if lp.carried:
                head += " carry " + ", ".join(f"{v} = %{i} as %{ph}" for v, i, ph in lp.carried)
            rows.append((head + " {", _annotations(n)))
            rows.extend(_node_lines(lp.body, indent + "    "))
            for v, u in lp.updates:
                rows.append((f"{indent}    {v} <- %{u}", ""))
            if lp.brk:
                rows.append((f"{indent}    break if %{lp.brk}", ""))
            rows.append((f"{indent}}} -> " + ", ".join(f"%{r} = {v}" for v, r in lp.results), ""))
            continue
        typ = f": {n.type}" if n.type is not None else ""
        rows.append((f"{indent}%{n.name}{typ} = {_rhs(n)}", _annotations(n)))
    return rows


def _annotations(n: Node) -> str:
    parts = []
    if n.span:
        parts.append("@ " + _where(n))
    if n.time is not None:
        parts.append(f"[{n.time}]")
    if n.guard is not None:
        parts.append(f"if %{n.guard}")
    return "  ".join(parts)


def _align(rows: list[tuple[str, str]]) -> list[str]:
    width = min(max((len(s) for s, a in rows if a), default=0), 100)
    return [f"{s.ljust(width)}    {a}".rstrip() if a else s for s, a in rows]


def format_program(p: Program) -> str:
    wf = p.workflow
    out = [f"; {os.path.basename(p.file)}  sha256:{p.source_hash[:12]}  passes: {', '.join(p.passes) or '-'}"]
    if p.models:
        out.append("models:")
        for m in p.models:
            src = f'env("{m.env}", "{m.default}")' if m.env else f'"{m.default}"'
            opts = "; ".join(f"{k} {json.dumps(v)}" for k, v in m.options)
            out.append(f"  {m.name} = {src}" + (f" {{ {opts} }}" if opts else ""))
    if p.params:
        out.append("params:")
        for prm in p.params:
            kind = prm.kind if prm.kind != "demos" else f"demos(max={prm.max_demos})"
            line = f"  {prm.name}: {kind}" + (" trainable" if prm.trainable else "")
            if prm.role:
                line += f" role {preview(prm.role, 40)}"
            if prm.kind == "demos" and prm.nearest:
                line += f" = pool of {len(prm.demos)} demo(s), the {prm.nearest} nearest to each call shown"
            elif prm.kind == "demos":
                line += f" = {len(prm.demos)} demo(s)"
            else:
                line += f" = {preview(prm.text)}"
            if prm.peers:
                line += "  peers: " + ", ".join(prm.peers)
            out.append(line)
    if p.functions:
        out.append("functions:")
        for f in p.functions:
            sig = ", ".join(f"{n}: {t}" for n, t in f.params)
            ret = f" -> {f.returns}" if f.returns is not None else ""
            doc = f"  {preview(f.doc.splitlines()[0], 50)}" if f.doc else ""
            out.append(f"  {f.name} = {f.module}.{f.attr}({sig}){ret}{doc}")
    if p.llms:
        out.append("llms:")
        for l in p.llms:
            sig = ", ".join(f"{n}: {t}" for n, t in l.params)
            uses = f"  uses {', '.join(l.uses)}" if l.uses else ""
            out.append(f"  {l.name}({sig}) -> {l.returns} via {l.model}{uses}")
            last_user = max((i for i, m in enumerate(l.messages) if m.role == "user"), default=len(l.messages))
            for i, msg in enumerate(l.messages):
                if i == last_user and l.demos:
                    out.append(f"    demos {l.demos}")
                out.append(f"    {msg.role} {preview(msg.template, 90)}")
    ins = ", ".join(f"{n}: {t}" for n, t in wf.inputs)
    out.append(f"workflow {wf.name}({ins}) -> {wf.returns} {{")
    out.extend(_align(_node_lines(wf.nodes, "  ")))
    out.append(f"  return %{wf.output}")
    out.append("}")
    if p.train:
        t = p.train
        extra = "".join(f", {k} {getattr(t, k)}" for k in ("teacher", "backward", "optimizer") if getattr(t, k))
        extra += "".join(f", supports {s.value} in {s.field}" for s in t.supports)
        out.append(f"train {t.workflow}: metric {t.metric}, answer {t.answer}{extra}")
    return "\n".join(out) + "\n"


def format_backward(p: Program) -> str:
    """The backward program, one line per gradient node, in the order they run::

        %loss = loss %out                                  @ t.pflow:14:1
        %out.grad = sum(%loss)
        %out.back = grad %out: call -> %s                  @ t.pflow:14:1  function first_word "Keeps…"

    then the peers of each trainable param."""
    out_name = p.workflow.output
    head = f"backward {p.workflow.name}: {len(p.backward)} gradient node(s) from the loss on %{out_name}, in run order"
    out = [head]
    rows = []
    for g in p.backward:
        if g.op == "loss":
            rows.append((f"  %{g.name} = loss %{g.node}", _grad_annotations(g, "")))
        elif g.op == "sum":
            rows.append((f"  %{g.name} = sum({', '.join('%' + a for a in g.args)})", f"[{g.time}]" if g.time else ""))
        else:
            feeds = ", ".join(f if _is_param(p, f) else "%" + f for f in g.feeds)
            rows.append((f"  %{g.name} = grad %{g.node}: {g.rule} -> {feeds}", _grad_annotations(g, _rule_note(g))))
    out.extend(_align(rows))
    trainable = p.trainable()
    out.append("peers:")
    if not trainable:
        out.append("  (no trainable params)")
    for prm in trainable:
        out.append(f"  {prm.name}: {', '.join(prm.peers) or '-'}")
    return "\n".join(out) + "\n"


def _rule_note(g: GradNode) -> str:
    if g.rule == "llm":
        return f"llm {g.llm}"
    if g.rule == "call":
        doc = f" {preview(g.doc.splitlines()[0], 50)}" if g.doc else ""
        return f"function {g.function}{doc}"
    if g.rule == "select":
        what = f"'{g.variable}' after the if" if g.variable else "loop-carried value"
        return f"{what}: only the branch %{g.cond} took"
    return ""


def _grad_annotations(g: GradNode, note: str) -> str:
    parts = []
    if g.span:
        parts.append(f"@ {os.path.basename(g.span.file)}:{g.span.line}:{g.span.col}")
    if g.time is not None:
        parts.append(f"[{g.time}]")
    if note:
        parts.append(note)
    return "  ".join(parts)


def _is_param(p: Program, name: str) -> bool:
    try:
        p.param(name)
    except KeyError:
        return False
    return True


def _q(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_dot(p: Program) -> str:
    """Graphviz: params as boxes, nodes as ellipses (the output doubled), forward edges
    solid; the backward program in red: the loss (a note) on the output, and a dashed edge
    from each gradient node's forward node to each of its feeds, labeled with its rule."""
    wf = p.workflow
    out = [f"digraph {_q(wf.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica"];']
    used_params = {u for l in p.llms for u in l.uses}
    for prm in p.params:
        style = ', style="bold"' if prm.trainable else ""
        out.append(f"  {_q('param:' + prm.name)} [shape=box, label={_q(prm.name + ' (' + prm.kind + ')')}{style}];")
    for n in wf.nodes:
        label = f"{n.name}\\n{n.op} {n.target if n.op not in ('const', 'input') else ''}".rstrip()
        if n.op == "const":
            label = f"{n.name}\\nconst"
        shape = "doubleoctagon" if n.name == wf.output else "ellipse"
        out.append(f"  {_q(n.name)} [shape={shape}, label=\"{_esc(label)}\"];")
    llm_uses = {l.name: l.uses for l in p.llms}
    for n in wf.nodes:
        for a in n.args:
            out.append(f"  {_q(a)} -> {_q(n.name)};")
        if n.guard is not None:
            out.append(f"  {_q(n.guard)} -> {_q(n.name)} [style=dotted, arrowhead=odot];")
        if n.op == "llm":
            for u in llm_uses.get(n.target, ()):
                if u in used_params:
                    out.append(f"  {_q('param:' + u)} -> {_q(n.name)};")
    # the backward program: the loss on the output, then each rule's feedback edges
    red = "style=dashed, color=red, fontcolor=red"
    for g in p.backward:
        if g.op == "loss":
            out.append('  "grad:loss" [shape=note, color=red, fontcolor=red, label="loss"];')
            out.append(f"  \"grad:loss\" -> {_q(g.node)} [{red}, constraint=false];")
        elif g.op == "grad":
            for f in g.feeds:
                dst = "param:" + f if _is_param(p, f) else f
                out.append(f"  {_q(g.node)} -> {_q(dst)} [{red}, label={_q(g.rule)}, constraint=false];")
    out.append("}")
    return "\n".join(out) + "\n"


def _esc(s: str) -> str:
    return s.replace('"', '\\"')
