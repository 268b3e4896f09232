"""The embedded model's speed per call, beside raw llama-cpp-python on the same prompts.

    python bench/local_speed.py [--calls 32] [--repeat 1] [--instances N] [--threads T] [--no-old-order]

TREC questions (bench/peerbench/data) classified by SmolLM2-135M under the label grammar
(max 8 tokens), the way promptc renders the peers' program: a system instruction, demos
as user/assistant turns, then "Question: ...". Scenarios, `--calls` calls each:

  a  no demos
  b  one fixed 8-demo set before every question
  c  four 8-demo sets interleaved as the demo race sends them: each question under every
     set in turn (set 1, 2, 3, 4, then the next question); `--calls` / 4 questions, 8 at
     the default, as many rows as the race's first cut
  d  a nearest-demos pool: the 8 nearest of the 60 training rows per question
     (promptc.runtime.nearest, demos in the pool's fixed order)
  d0 the same demos shown least similar first (the order before; --no-old-order skips it)

promptc: all calls of a scenario at once through `local.acomplete` (the process's pool:
`local_instances()` instances of `llama_threads()` threads, the shared prefix cache
emptied before each scenario). raw: one `llama_cpp.Llama` with one thread, as promptc
used it before the pool (extra buffer types off, the same context), the calls one after
another in the same order, reusing only the prefix of the call just before (llama-cpp-
python's own behaviour). The two run alternately, scenario by scenario, in one process.

Columns: ms per call (wall / calls, the best of `--repeat` passes, each from a cold
start: no saved prefix, empty contexts); CPU ms per call (the process's CPU time over the
pass / calls: what the calls cost whatever else the machine runs); prompt tokens per call; prompt tokens per second
(all prompt tokens / wall); "evaluated" = the share of prompt and answer tokens promptc's
instances ran through the model (the rest came from reused prefixes); "unique" = the
scenario's distinct prompt prefixes (the size of the token trie of its prompts) as a
share of its prompt tokens, what a perfect prefix cache evaluates; the ceiling = those
unique tokens at the machine's prefill rate, per call: the better of one instance with
every core and one single-threaded instance times the cores (on a loaded machine
llama.cpp's spinning threads make the first much the slower); "same" = calls whose
answer promptc and raw agree on; accuracy against the TREC labels. Then the issue's
targets. On a shared machine timings move with the load of everything else: compare one
run's rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "bench" / "peerbench" / "data"
LABELS = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
INSTRUCTION = (
    "Classify the question into one of these classes: ABBR, DESC, ENTY, HUM, LOC, NUM. "
    "Answer with the class only."
)  # bench/peerbench/trec.pflow's start
MAX_TOKENS = 8


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def messages(demos: list[tuple[str, str]], question: str) -> list[dict]:
    out = [{"role": "system", "content": INSTRUCTION}]
    for q, label in demos:
        out += [{"role": "user", "content": f"Question: {q}"}, {"role": "assistant", "content": label}]
    return out + [{"role": "user", "content": f"Question: {question}"}]


def scenarios(calls: int, old_order: bool) -> list[tuple[str, str, list[tuple[list[dict], str]]]]:
    """(key, description, [(messages, gold label)]) per scenario."""
    from promptc.ir import Demo
    from promptc.runtime import bm25, nearest

    train, test = load("train.jsonl"), load("test.jsonl")
    pairs = [(r["question"], r["coarse_label"]) for r in train]
    sets = [pairs[i * 8:(i + 1) * 8] for i in range(4)]
    rows = [(r["question"], r["coarse_label"]) for r in test]
    pool = tuple(Demo((("question", q),), label) for q, label in pairs)

    def near(question: str, old: bool) -> list[tuple[str, str]]:
        chosen = nearest.select(pool, {"question": question}, 8)
        if old:  # least similar first, the order before the pool order
            scores = bm25.scores(question, [q for q, _ in pairs], stopwords=None)
            chosen = tuple(sorted(chosen, key=lambda d: (scores[pool.index(d)], -pool.index(d))))
        return [(dict(d.inputs)["question"], d.output) for d in chosen]

    out = [
        ("a", "no demos", [(messages([], q), gold) for q, gold in rows[:calls]]),
        ("b", "one fixed 8-demo set", [(messages(sets[0], q), gold) for q, gold in rows[:calls]]),
        ("c", "four 8-demo sets interleaved",
         [(messages(s, q), gold) for q, gold in rows[: max(1, calls // 4)] for s in sets]),
        ("d", "nearest-demos pool (8 of 60)", [(messages(near(q, False), q), gold) for q, gold in rows[:calls]]),
    ]
    if old_order:
        out.append(("d0", "the same, least similar first", [(messages(near(q, True), q), gold) for q, gold in rows[:calls]]))
    return out


def raw_llama(threads: int):
    import llama_cpp

    from promptc.runtime import local

    path = local.default_model_path()
    with local.load_params():
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=local.context_size(path), n_threads=threads, n_threads_batch=threads,
            verbose=False, seed=0,
        )


def tokenizer(llm):
    """The prompt tokens llama-cpp-python's chat handler makes of a message list."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text(token: int) -> str:
        return llm._model.token_get_text(token) if token != -1 else ""

    fmt = Jinja2ChatFormatter(
        template=llm.metadata["tokenizer.chat_template"], eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos()),
    )

    def tokens(msgs: list[dict]) -> list[int]:
        r = fmt(messages=msgs)
        return llm.tokenize(r.prompt.encode("utf-8"), add_bos=not r.added_special, special=True)

    return tokens


def trie_size(prompts: list[list[int]]) -> int:
    """Distinct prefixes over all prompts: the tokens a perfect prefix cache evaluates."""
    seen: set[tuple[int, ...]] = set()
    for p in prompts:
        for n in range(1, len(p) + 1):
            seen.add(tuple(p[:n]))
    return len(seen)


def prefill_rate(tokens: list[int], threads: int) -> float:
    """Prompt tokens per second of one instance with `threads` threads (best of 3)."""
    llm = raw_llama(threads)
    best = float("inf")
    try:
        for _ in range(3):
            llm.reset()
            t = time.perf_counter()
            llm.eval(tokens)
            best = min(best, time.perf_counter() - t)
    finally:
        llm.close()
    return len(tokens) / best


def run_raw(llm, grammar, reqs: list[tuple[list[dict], str]]) -> tuple[float, float, list[str]]:
    """Wall time, process CPU time and answers."""
    llm.reset()  # cold: nothing kept from the pass before
    t, cpu = time.perf_counter(), time.process_time()
    texts = []
    for msgs, _ in reqs:
        out = llm.create_chat_completion(messages=msgs, temperature=0.0, max_tokens=MAX_TOKENS, seed=0, grammar=grammar)
        texts.append(out["choices"][0]["message"].get("content") or "")
    return time.perf_counter() - t, time.process_time() - cpu, texts


def run_promptc(pool, reqs: list[tuple[list[dict], str]]) -> tuple[float, float, list, int]:
    """Wall time, process CPU time, answers and tokens evaluated, from a cold pool (no
    saved prefix)."""
    from promptc.runtime import local

    pool.forget()
    before = sum(m.llm.tokens_evaluated for m in pool.models)

    async def all_at_once() -> list:
        return await asyncio.gather(*(
            local.acomplete("default", msgs, max_tokens=MAX_TOKENS, choices=LABELS) for msgs, _ in reqs
        ))

    t, cpu = time.perf_counter(), time.process_time()
    answers = asyncio.run(all_at_once())
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return wall, cpu, answers, sum(m.llm.tokens_evaluated for m in pool.models) - before


async def warm_up(size: int) -> None:
    """Load every instance of the pool before timing anything."""
    from promptc.runtime import local

    await asyncio.gather(*(
        local.acomplete("default", messages([], f"Warm-up question {i}?"), max_tokens=2, choices=LABELS)
        for i in range(2 * size)
    ))


def measure(args: argparse.Namespace) -> tuple[list[dict], dict]:
    import llama_cpp

    from promptc.runtime import local

    pool = local.pool("default")
    asyncio.run(warm_up(pool.size))
    raw = raw_llama(1)
    grammar = llama_cpp.LlamaGrammar.from_string(local.choices_grammar(LABELS), verbose=False)
    tokens = tokenizer(raw)
    table = []
    for key, desc, reqs in scenarios(args.calls, args.old_order):
        prompts = [tokens(m) for m, _ in reqs]
        wall = raw_wall = cpu = raw_cpu = float("inf")
        for _ in range(args.repeat):  # alternately; the best pass of each
            w, c, answers, evaluated = run_promptc(pool, reqs)
            wall, cpu = min(wall, w), min(cpu, c)
            w, c, raw_texts = run_raw(raw, grammar, reqs)
            raw_wall, raw_cpu = min(raw_wall, w), min(raw_cpu, c)
        n, prompt_tok = len(reqs), sum(a.prompt_tokens for a in answers)
        if prompt_tok != sum(len(p) for p in prompts):
            print(f"note: {key}: the bench's tokenizer counts {sum(map(len, prompts))} prompt tokens, "
                  f"promptc {prompt_tok}", file=sys.stderr)
        table.append({
            "key": key, "desc": desc, "calls": n, "tok": prompt_tok / n, "ms": 1000 * wall / n,
            "raw_ms": 1000 * raw_wall / n, "cpu": 1000 * cpu / n, "raw_cpu": 1000 * raw_cpu / n, "tps": prompt_tok / wall, "raw_tps": prompt_tok / raw_wall,
            "evaluated": evaluated / (prompt_tok + sum(a.completion_tokens for a in answers)),
            "unique": trie_size(prompts), "same": sum(a.text == r for a, r in zip(answers, raw_texts)),
            "acc": sum(a.text == gold for a, (_, gold) in zip(answers, reqs)) / n,
            "raw_acc": sum(r == gold for r, (_, gold) in zip(raw_texts, reqs)) / n,
        })
        print(f"... {key}: promptc {table[-1]['ms']:.0f} ms/call, raw {table[-1]['raw_ms']:.0f}", file=sys.stderr)
    sample = tokens(scenarios(1, False)[1][2][0][0]) * 2  # an 8-demo prompt, twice: ~520 tokens
    raw.close()
    cores = local.usable_cores()
    rates = {"all": prefill_rate(sample, cores), "one": prefill_rate(sample, 1)}
    rate = max(rates["all"], cores * rates["one"])
    for row in table:
        row["ceiling_ms"] = 1000 * row["unique"] / rate / row["calls"]
    machine = {"cores": cores, "instances": pool.size, "threads": pool.threads, **rates,
               "cache_mb": (pool.cache.capacity_bytes >> 20) if pool.cache is not None else 0}
    return table, machine


def report(table: list[dict], machine: dict, load_before: tuple, load_after: tuple) -> None:
    print(f"\nSmolLM2-135M Q4_1, {machine['cores']} usable cores, load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after. promptc: {machine['instances']} instance(s) x {machine['threads']} "
          f"thread(s), prefix cache {machine['cache_mb']} MiB; raw: 1 Llama x 1 thread. Prefill: "
          f"{machine['all']:.0f} prompt tokens/s with one instance of {machine['cores']} threads, "
          f"{machine['one']:.0f} with one thread.\n")
    print("| scenario | calls | prompt tok/call | promptc ms/call | raw ms/call | promptc / raw | "
          "CPU ms/call promptc / raw | promptc tok/s | raw tok/s | evaluated | unique | ceiling ms/call | same answers | "
          "accuracy promptc / raw |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| ({r['key']}) {r['desc']} | {r['calls']} | {r['tok']:.0f} | {r['ms']:.0f} | {r['raw_ms']:.0f} | "
              f"{r['ms'] / r['raw_ms']:.2f} | {r['cpu']:.0f} / {r['raw_cpu']:.0f} | {r['tps']:.0f} | {r['raw_tps']:.0f} | "
              f"{100 * r['evaluated']:.0f} % | "
              f"{100 * r['unique'] / (r['tok'] * r['calls']):.0f} % | "
              f"{r['ceiling_ms']:.0f} | {r['same']}/{r['calls']} | {r['acc']:.2f} / {r['raw_acc']:.2f} |")
    by = {r["key"]: r for r in table}
    checks = [
        ("(c) within 1.5x of (b) per call", by["c"]["ms"] / by["b"]["ms"], 1.5),
        ("(b) within 1.5x of (a) per call", by["b"]["ms"] / by["a"]["ms"], 1.5),
        ("(d) promptc at most 0.6x raw", by["d"]["ms"] / by["d"]["raw_ms"], 0.6),
    ]
    print()
    for name, ratio, limit in checks:
        print(f"- {name}: {ratio:.2f} ({'met' if ratio <= limit else 'NOT met'})")
    if "d0" in by:
        print(f"- nearest pool order: promptc {by['d']['ms']:.0f} ms/call, {100 * by['d']['evaluated']:.0f} % evaluated; "
              f"least similar first {by['d0']['ms']:.0f} ms/call, {100 * by['d0']['evaluated']:.0f} % evaluated")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=32, help="calls per scenario (default 32)")
    ap.add_argument("--instances", type=int, help="PROMPTC_LOCAL_INSTANCES for promptc's pool")
    ap.add_argument("--threads", type=int, help="PROMPTC_LOCAL_THREADS for promptc's pool")
    ap.add_argument("--repeat", type=int, default=1, help="passes per scenario and side, the best kept (default 1)")
    ap.add_argument("--no-old-order", dest="old_order", action="store_false", help="skip scenario d0")
    args = ap.parse_args()
    if args.instances:
        os.environ["PROMPTC_LOCAL_INSTANCES"] = str(args.instances)
    if args.threads:
        os.environ["PROMPTC_LOCAL_THREADS"] = str(args.threads)
    from promptc.runtime import local

    reason = local.available("default")
    if reason:
        sys.exit(f"the embedded model cannot run here: {reason}")
    load_before = os.getloadavg()
    table, machine = measure(args)
    report(table, machine, load_before, os.getloadavg())


if __name__ == "__main__":
    main()
