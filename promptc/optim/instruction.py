"""The instruction optimizer: textual gradient descent with memory, one prompt param at a time.

`propose` renders the meta-prompt (templates/optimizer_user.txt) with the param's role and
current value, its peers read-only (their role and current values, so the update does not
repeat or contradict the answer format or the demos), the gradients grouped by sample in
time order ("step k" labels for loop steps), the best past values with their validation
scores (memory), the values already rejected at this step, and the constraints (keep
every `{placeholder}`, a length limit). The reply goes through `extract.extract` and
`extract.check` (the filters: repetition, meta-prompt copies, dropped placeholders or
output labels, code-shaped text, ...); on failure the optimizer is asked once more with a
stricter reminder; if that fails too the proposal is skipped (logged, `Proposal.text is
None`), never raised. `Proposal.rejections` names the filter that refused each reply, in
order, so the trainer can count what each filter rejects.

The labels a proposal must keep (`labels_for`) are the `enum` labels of the outputs of
every `llm` that uses the param (an enum anywhere in the output type: a record field, a
list element); only those the current value names are required.
"""

from __future__ import annotations

import logging
from typing import Sequence

from attrs import frozen

from promptc.ir import Param, Program
from promptc.optim import extract, templates
from promptc.optim.backward import Gradients, resolve_model, show, task_model
from promptc.runtime.records import CallRequest

log = logging.getLogger(__name__)

MAX_SAMPLES_SHOWN = 8
MAX_GRADIENT_CHARS = 600
MEMORY_SHOWN = 4


@frozen
class Proposal:
    """One attempt to update a param: `text` is None when it was skipped (see `reason`)."""

    param: str
    text: str | None
    reason: str = ""
    messages: tuple[dict, ...] = ()
    calls: int = 0
    rejections: tuple[str, ...] = ()  # extract.FILTERS name of each refused reply, in order


def optimizer_model(program: Program) -> str:
    spec = program.train
    return resolve_model(program, spec.optimizer if spec else None) or task_model(program)


def _enum_labels(t) -> list[str]:
    if t is None:
        return []
    if t.kind == "enum":
        return list(t.labels)
    out = _enum_labels(t.elem)
    for _, f in t.fields:
        out += _enum_labels(f)
    return out


def labels_for(program: Program, name: str) -> tuple[str, ...]:
    """The enum labels of the outputs of the llms that use the param `name`."""
    seen: dict[str, None] = {}
    for llm in program.llms:
        if name in llm.uses:
            for label in _enum_labels(llm.returns):
                seen.setdefault(label, None)
    return tuple(seen)


def shown_losses(gradients: Gradients, name: str) -> tuple[str, ...]:
    """The loss lines of the samples whose feedback on `name` the optimizer is shown."""
    losses = dict(gradients.losses)
    return tuple(losses[s] for s in gradients.by_sample(name) if losses.get(s))


def max_chars(current: str) -> int:
    """The length limit of a proposal: twice the current value, and never below 600."""
    return max(600, 2 * len(current))


def render_peers(program: Program, param: Param) -> str:
    lines = []
    for name in param.peers:
        try:
            peer = program.param(name)
        except KeyError:
            continue
        if peer.kind == "demos":
            shown = "; ".join(
                f"{show(dict(d.inputs), 120)} -> {show(d.output, 80)}" for d in peer.demos[:4]
            ) or "(no examples yet)"
            lines.append(f"- `{name}` (few-shot examples; role: {peer.role or 'not stated'}): {shown}")
        else:
            lines.append(f"- `{name}` (role: {peer.role or 'not stated'}): {peer.text.strip()!r}")
    return "\n".join(lines) or "(none)"


def render_gradients(gradients: Gradients, name: str) -> str:
    groups = gradients.by_sample(name)
    losses = dict(gradients.losses)
    blocks = []
    for k, (sample, grads) in enumerate(sorted(groups.items())):
        if k == MAX_SAMPLES_SHOWN:
            blocks.append(f"({len(groups) - k} more failing examples not shown)")
            break
        head = f"Example {k + 1}:"
        loss = losses.get(sample)
        if loss:
            head += "\n  " + "\n  ".join(show(loss, 500).splitlines())
        lines = [head]
        for g in grads:
            label = f"step {g.step}" if g.step is not None else "feedback"
            lines.append(f"  - {label} (at `{g.node}`): {show(' '.join(g.text.split()), MAX_GRADIENT_CHARS)}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks) or "(no feedback)"


def render_memory(memory: Sequence[tuple[str, float]]) -> str:
    best = sorted(memory, key=lambda m: -m[1])[:MEMORY_SHOWN]
    return "\n".join(f"- score {score:.3f}: {text.strip()!r}" for text, score in best) or "(none yet)"


def meta_prompt(
    program: Program,
    param: Param,
    gradients: Gradients,
    *,
    memory: Sequence[tuple[str, float]] = (),
    rejected: Sequence[str] = (),
    limit: int | None = None,
) -> tuple[dict, ...]:
    current = param.text
    holes = extract.placeholders(current)
    user = templates.render(
        "optimizer_user",
        name=param.name,
        role=param.role or "not stated",
        current=current.strip(),
        peers=render_peers(program, param),
        gradients=render_gradients(gradients, param.name),
        memory=render_memory(memory),
        rejected="\n".join(f"- {r.strip()!r}" for r in rejected) or "(none)",
        placeholders=", ".join("{" + h + "}" for h in holes) or "(none)",
        max_chars=limit or max_chars(current),
    )
    return (
        {"role": "system", "content": templates.render("optimizer_system")},
        {"role": "user", "content": user},
    )


async def propose(
    program: Program,
    name: str,
    gradients: Gradients,
    engine,
    *,
    memory: Sequence[tuple[str, float]] = (),
    rejected: Sequence[str] = (),
    model: str | None = None,
    phase: str = "propose",
    index: int = 0,
) -> Proposal:
    """A new value for the prompt param `name`, or a skipped Proposal with the reason."""
    param = program.param(name)
    model = model or optimizer_model(program)
    limit = max_chars(param.text)
    messages = meta_prompt(program, param, gradients, memory=memory, rejected=rejected, limit=limit)
    check = dict(
        rejected=rejected,
        max_chars=limit,
        meta_static=" ".join(templates.static_text(t) for t in ("optimizer_user", "optimizer_system", "loss")),
        meta_headers=templates.headers("optimizer_user"),
        meta_shown=shown_losses(gradients, name),
        feedback=tuple(g.text for g in gradients.for_param(name)),
        labels=labels_for(program, name),
    )
    calls = 0
    convo = list(messages)
    reason = ""
    refused: list[str] = []
    for attempt in range(2):
        req = CallRequest(
            model=model,
            messages=tuple(convo),
            temperature=0.0 if index == 0 and attempt == 0 else 0.7,
            max_tokens=min(1024, limit // 4 + 64),  # ~4 characters a token, plus the tags
            phase=phase,
            rollout=f"propose-{index}-{attempt}" if (index or attempt) else "",
        )
        calls += 1
        res = await engine.call(req)
        if res.error:
            reason = f"optimizer call failed: {res.error}"
            refused.append(extract.CALL_FAILED)
            log.warning("propose %s: %s", name, reason)
            break
        cand = extract.extract(res.text, plain_ok=attempt > 0)
        if cand is not None:
            cand = extract.clip(cand, limit)
        rejection = (
            extract.Rejection(extract.NO_PROPOSAL, "no proposal found in the reply")
            if cand is None else extract.check(cand, param.text, **check)
        )
        if cand is not None and rejection is None:
            return Proposal(name, cand, "", messages, calls, tuple(refused))
        reason = rejection.reason
        refused.append(rejection.filter)
        log.info("propose %s (attempt %d): %s: %s", name, attempt + 1, rejection.filter, reason)
        convo += [
            {"role": "assistant", "content": res.text or ""},
            {"role": "user", "content": templates.render("optimizer_retry", reason=reason, name=name)},
        ]
    log.warning("propose %s: skipped (%s)", name, reason)
    return Proposal(name, None, reason, messages, calls, tuple(refused))
