"""Regenerate the example datasets from the public copies in ../shared/datasets.

    python examples/make_splits.py [--shared ../shared/datasets]

Splits are drawn with a fixed seed, so running this again gives the same files. The
outputs are committed: examples never download data. Sources and licenses: see
examples/DATA.md.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 2501  # arXiv 2501.16673


def read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{path.relative_to(HERE)}: {len(rows)} rows")


def trec(shared: Path) -> None:
    rng = random.Random(SEED)
    train = read(shared / "trec_train.jsonl")
    rng.shuffle(train)
    rows = [{"question": r["question"], "label": r["coarse_label"]} for r in train]
    test = read(shared / "trec_test.jsonl")
    rng.shuffle(test)
    write(HERE / "trec/train.jsonl", rows[:60])
    write(HERE / "trec/val.jsonl", rows[60:120])
    write(HERE / "trec/test.jsonl", [{"question": r["question"], "label": r["coarse_label"]} for r in test[:100]])


def object_counting(shared: Path) -> None:
    rng = random.Random(SEED)
    rows = read(shared / "bbh_object_counting.jsonl")
    rng.shuffle(rows)
    write(HERE / "object_counting/train.jsonl", rows[:50])
    write(HERE / "object_counting/val.jsonl", rows[50:100])
    write(HERE / "object_counting/test.jsonl", rows[100:200])


def word_sorting(shared: Path) -> None:
    """BIG-Bench Hard word sorting, split like object counting (a held-out task for the
    demo search's choice rule: docs/training.md)."""
    rng = random.Random(SEED)
    rows = read(shared / "bbh_word_sorting.jsonl")
    rng.shuffle(rows)
    (HERE / "word_sorting").mkdir(exist_ok=True)
    write(HERE / "word_sorting/train.jsonl", rows[:50])
    write(HERE / "word_sorting/val.jsonl", rows[50:100])
    write(HERE / "word_sorting/test.jsonl", rows[100:200])


def hotpotqa(shared: Path) -> None:
    rng = random.Random(SEED)
    rows = read(shared / "hotpotqa_dev.jsonl")
    rows = [r for r in rows if len(r["context"]) == 10]  # 3 rows carry only 2 paragraphs
    rng.shuffle(rows)
    keep = ("id", "question", "answer", "type", "supporting_titles", "context")
    rows = [{k: r[k] for k in keep} for r in rows]
    write(HERE / "multihop/train.jsonl", rows[:40])
    write(HERE / "multihop/val.jsonl", rows[40:80])
    write(HERE / "multihop/test.jsonl", rows[80:180])


def router(shared: Path) -> None:
    """HotpotQA questions of both types (bridge, comparison), balanced, not in the multihop
    splits, each with its supporting sentences as `evidence` (the router example answers
    from them: it exercises routing, not retrieval)."""
    rng = random.Random(SEED + 12)
    taken = {r["id"] for split in ("train", "val", "test") for r in read(HERE / f"multihop/{split}.jsonl")}
    rows = [r for r in read(shared / "hotpotqa_dev.jsonl") if r["id"] not in taken]
    rng.shuffle(rows)

    def evidence(r: dict) -> str:
        paragraphs = {title: sentences for title, sentences in r["context"]}
        lines = []
        for title, i in r["supporting_facts"]:
            sentences = paragraphs.get(title, [])
            if 0 <= i < len(sentences):
                lines.append(f"{title}: {sentences[i].strip()}")
        return "\n".join(lines)

    by_type = {t: [r for r in rows if r["type"] == t] for t in ("comparison", "bridge")}
    out = {}
    start = 0
    for split, n in (("train", 10), ("val", 10), ("test", 25)):
        picked = [r for t in ("comparison", "bridge") for r in by_type[t][start : start + n]]
        rng.shuffle(picked)
        out[split] = [
            {"id": r["id"], "question": r["question"], "evidence": evidence(r), "answer": r["answer"], "type": r["type"]}
            for r in picked
        ]
        start += n
    for split, rows_ in out.items():
        write(HERE / f"router/{split}.jsonl", rows_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "datasets")
    shared = ap.parse_args().shared
    trec(shared)
    object_counting(shared)
    word_sorting(shared)
    hotpotqa(shared)
    router(shared)


if __name__ == "__main__":
    main()
