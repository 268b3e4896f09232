"""The instruction optimizer: textual gradient descent with memory, one prompt param at a time.

`propose` renders the meta-prompt (templates/optimizer_user.txt) with the param's role and
current value, its peers read-only (their role and current values, so the update does not
repeat or contradict the answer format or the demos), the gradients grouped by sample in
time order ("step k" labels for loop steps), the best past values with their validation
scores (memory), the values already rejected at this step, and the constraints (keep
every `{placeholder}`, a length limit). The reply goes through `extract.extract` and
`extract.check` (the filters: repetition, meta-prompt copies, dropped placeholders or
output labels, code-shaped text, ...); on failure the optimizer is asked once more with a
stricter reminder; if that fails too the proposal is skipped (`Proposal.text is None`),
never raised. `Proposal.rejections` names the filter that refused each reply, in order, so
the trainer can count what each filter rejects, and `Proposal.replies` keeps every reply
(promptc.optim.history.Reply: its text, the filter and the reason) for the history. A
skip is logged at INFO only: the trainer records it, the live display and the report
show it.

The meta-prompt is fitted to the optimizer model's context window (fit.py): when the full
rendering would not leave room for the reply, it is rendered again at the next of
`FIT_LEVELS` (repeated feedback once, less memory, fewer rejected values, fewer failing
examples with their inputs cut, marked `…[cut]`), and the first that fits is sent.

The labels a proposal must keep (`labels_for`) are the `enum` labels of the outputs of
every `llm` that uses the param (an enum anywhere in the output type: a record field, a
list element); only those the current value names are required.
"""

from __future__ import annotations

import logging
from typing import Sequence

from attrs import frozen

from promptc.ir import Param, Program
from promptc.optim import extract, fit, templates
from promptc.optim.backward import Gradients
from promptc.optim.history import Reply
from promptc.optim.roles import optimizer_model
from promptc.optim.rules import show
from promptc.runtime.records import CallRequest

log = logging.getLogger(__name__)

MAX_SAMPLES_SHOWN = 8
MAX_GRADIENT_CHARS = 600
MAX_LOSS_CHARS = 500
MEMORY_SHOWN = 4
PEER_DEMOS_SHOWN = 4


@frozen
class Shown:
    """How much of each part a meta-prompt shows (one fitting level, see `FIT_LEVELS`).

    samples: failing examples; loss_chars / gradient_chars: the characters of each
    example's loss lines and of each feedback; dedupe: a feedback repeated word for word
    is shown once; memory: the best earlier values; rejected: the newest values rejected at
    this step; peer_demos / peer_chars: the demos shown per demos peer and the characters
    of each peer value.
    """

    samples: int = MAX_SAMPLES_SHOWN
    loss_chars: int = MAX_LOSS_CHARS
    gradient_chars: int = MAX_GRADIENT_CHARS
    dedupe: bool = False
    memory: int = MEMORY_SHOWN
    rejected: int = 1_000
    peer_demos: int = PEER_DEMOS_SHOWN
    peer_chars: int = 100_000


# What a meta-prompt drops to fit the optimizer model's context, least useful first: repeated
# feedback, then the lowest-scoring memory and the oldest rejected values, then failing
# examples beyond the first few with their long inputs cut (marked fit.CUT); the current
# value, the role and the constraints are always shown whole.
FIT_LEVELS = (
    Shown(),
    Shown(dedupe=True),
    Shown(dedupe=True, memory=2, rejected=3),
    Shown(dedupe=True, memory=1, rejected=1, peer_demos=2, peer_chars=600),
    Shown(dedupe=True, memory=1, rejected=1, peer_demos=2, peer_chars=600, samples=4, loss_chars=300, gradient_chars=300),
    Shown(dedupe=True, memory=1, rejected=1, peer_demos=1, peer_chars=300, samples=2, loss_chars=200, gradient_chars=200),
    Shown(dedupe=True, memory=0, rejected=0, peer_demos=0, peer_chars=200, samples=1, loss_chars=120, gradient_chars=150),
)


@frozen
class Proposal:
    """One attempt to update a param: `text` is None when it was skipped (see `reason`)."""

    param: str
    text: str | None
    reason: str = ""
    messages: tuple[dict, ...] = ()
    calls: int = 0
    rejections: tuple[str, ...] = ()  # extract.FILTERS name of each refused reply, in order
    replies: tuple[Reply, ...] = ()  # every reply, in order: the refused ones with their filter


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


def render_peers(program: Program, param: Param, shown: Shown = Shown()) -> str:
    lines = []
    for name in param.peers:
        try:
            peer = program.param(name)
        except KeyError:
            continue
        if peer.kind == "demos":
            demos = "; ".join(
                f"{show(dict(d.inputs), 120)} -> {show(d.output, 80)}" for d in peer.demos[: shown.peer_demos]
            ) or ("(no examples yet)" if not peer.demos else f"({len(peer.demos)} examples, not shown)")
            lines.append(f"- `{name}` (few-shot examples; role: {peer.role or 'not stated'}): {demos}")
        else:
            lines.append(f"- `{name}` (role: {peer.role or 'not stated'}): {fit.cut(peer.text.strip(), shown.peer_chars)!r}")
    return "\n".join(lines) or "(none)"


def render_gradients(gradients: Gradients, name: str, shown: Shown = Shown()) -> str:
    groups = gradients.by_sample(name)
    losses = dict(gradients.losses)
    blocks = []
    seen: set[str] = set()
    for k, (sample, grads) in enumerate(sorted(groups.items())):
        if k == shown.samples:
            blocks.append(f"({len(groups) - k} more failing examples not shown)")
            break
        head = f"Example {k + 1}:"
        loss = losses.get(sample)
        if loss:
            head += "\n  " + "\n  ".join(fit.cut(fit.cut_lines(loss, shown.loss_chars), MAX_LOSS_CHARS).splitlines())
        lines = [head]
        for g in grads:
            text = " ".join(g.text.split())
            if shown.dedupe:
                if text.lower() in seen:
                    continue
                seen.add(text.lower())
            label = f"step {g.step}" if g.step is not None else "feedback"
            lines.append(f"  - {label} (at `{g.node}`): {fit.cut(text, shown.gradient_chars)}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks) or "(no feedback)"


def render_memory(memory: Sequence[tuple[str, float]], shown: Shown = Shown()) -> str:
    best = sorted(memory, key=lambda m: -m[1])[: shown.memory]
    return "\n".join(f"- score {score:.3f}: {text.strip()!r}" for text, score in best) or "(none yet)"


def meta_prompt(
    program: Program,
    param: Param,
    gradients: Gradients,
    *,
    memory: Sequence[tuple[str, float]] = (),
    rejected: Sequence[str] = (),
    limit: int | None = None,
    shown: Shown = Shown(),
) -> tuple[dict, ...]:
    current = param.text
    holes = extract.placeholders(current)
    newest = list(rejected)[-shown.rejected :] if shown.rejected else []
    user = templates.render(
        "optimizer_user",
        name=param.name,
        role=param.role or "not stated",
        current=current.strip(),
        peers=render_peers(program, param, shown),
        gradients=render_gradients(gradients, param.name, shown),
        memory=render_memory(memory, shown),
        rejected="\n".join(f"- {r.strip()!r}" for r in newest) or "(none)",
        placeholders=", ".join("{" + h + "}" for h in holes) or "(none)",
        max_chars=limit or max_chars(current),
    )
    return (
        {"role": "system", "content": templates.render("optimizer_system")},
        {"role": "user", "content": user},
    )


def fitted_meta_prompt(
    program: Program,
    param: Param,
    gradients: Gradients,
    *,
    budget: int | None,
    memory: Sequence[tuple[str, float]] = (),
    rejected: Sequence[str] = (),
    limit: int | None = None,
) -> tuple[dict, ...]:
    """`meta_prompt` at the first of `FIT_LEVELS` whose estimate fits `budget` tokens."""
    messages, _ = fit.first_fitting(
        lambda shown: meta_prompt(program, param, gradients, memory=memory, rejected=rejected, limit=limit, shown=shown),
        FIT_LEVELS,
        budget,
    )
    return messages


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
    context: int | None = None,
) -> Proposal:
    """A new value for the prompt param `name`, or a skipped Proposal with the reason.

    context: the optimizer model's context window in tokens; None looks it up
    (`fit.context_window`). The meta-prompt is fitted to it, and so is the retry.
    """
    param = program.param(name)
    model = model or optimizer_model(program)
    limit = max_chars(param.text)
    if context is None:
        context = fit.context_window(model)
    max_tokens = min(1024, limit // 4 + 64)  # ~4 characters a token, plus the tags
    fitted = dict(memory=memory, rejected=rejected, limit=limit)
    messages = fitted_meta_prompt(program, param, gradients, budget=fit.budget(context, max_tokens), **fitted)
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
    replies: list[Reply] = []  # the refused ones with their filter: `Proposal.rejections` in order
    for attempt in range(2):
        req = CallRequest(
            model=model,
            messages=tuple(convo),
            temperature=0.0 if index == 0 and attempt == 0 else 0.7,
            seed=index * 2 + attempt,  # sampled proposals differ from one another (a fixed seed repeats them)
            max_tokens=max_tokens,
            phase=phase,
            rollout=f"propose-{index}-{attempt}" if (index or attempt) else "",
        )
        calls += 1
        res = await engine.call(req)
        if res.error:
            reason = f"optimizer call failed: {res.error}"
            replies.append(Reply(None, extract.CALL_FAILED, reason))
            log.info("propose %s: %s", name, reason)
            break
        cand = extract.extract(res.text, plain_ok=attempt > 0)
        if cand is not None:
            cand = extract.clip(cand, limit)
        rejection = (
            extract.Rejection(extract.NO_PROPOSAL, "no proposal found in the reply")
            if cand is None else extract.check(cand, param.text, **check)
        )
        if cand is not None and rejection is None:
            replies.append(Reply(cand))
            return Proposal(name, cand, "", messages, calls, _filters(replies), tuple(replies))
        reason = rejection.reason
        replies.append(Reply(cand if cand is not None else (res.text or ""), rejection.filter, reason))
        log.info("propose %s (attempt %d): %s: %s", name, attempt + 1, rejection.filter, reason)
        retry = [
            {"role": "assistant", "content": res.text or ""},
            {"role": "user", "content": templates.render("optimizer_retry", reason=reason, name=name)},
        ]
        first = fitted_meta_prompt(
            program, param, gradients, **fitted,
            budget=fit.budget(context, max_tokens, reserve=fit.message_tokens(retry)),
        )
        convo = [*first, *retry]
    log.info("propose %s: skipped (%s)", name, reason)
    return Proposal(name, None, reason, messages, calls, _filters(replies), tuple(replies))


def _filters(replies: Sequence[Reply]) -> tuple[str, ...]:
    return tuple(r.filter for r in replies if r.filter)
