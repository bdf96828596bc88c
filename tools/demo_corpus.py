#!/usr/bin/env python3
"""Generates the synthetic data behind DPO Studio's demo model (python3 standard library only).

Everything is drawn from one seeded random.Random, so the same seed gives byte-identical files:

  sft.jsonl            the SFT instruction corpus ({"prompt", "completion"} rows). It is deliberately
                       *mixed*: sums are often off by one and greetings often curt, so the SFT model
                       answers both ways and DPO has something visible to fix.
  spm_text.txt         one sentence per line, the text spm_train learns the tokenizer from (the SFT
                       rows, plus the text of any --extra-jsonl files).
  dpo_pairs.jsonl      preference pairs ({"prompt", "chosen", "rejected"}): correct sums over wrong
                       ones, polite greetings over curt ones, on a subset of the prompts.
  demo_eval.jsonl      held-out prompts (none of them in dpo_pairs.jsonl) with the preferred property
                       ({"prompt", "category", "expect_contains", "reject_contains"}) for
                       `dpo-cli demo-eval`.

It does not train anything; scripts/make_demo_model.sh runs it, spm_train and dpo-cli.
"""

import argparse
import json
import os
import random

NAMES = [
    "Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Isla", "Jack",
    "Karen", "Leo", "Maria", "Noah", "Olivia", "Peter", "Quinn", "Rosa", "Sam", "Tina",
    "Uma", "Victor", "Wendy", "Xavier", "Yara", "Zoe", "Anna", "Ben", "Clara", "Daniel",
    "Ella", "Felix", "Hannah", "Ivan", "Julia", "Kevin", "Laura", "Max", "Nina", "Oscar",
    "Paula", "Ravi", "Sofia", "Tom", "Vera", "Will", "Amir", "Bianca", "Chen", "Dora",
    "Elias", "Fatima", "Hugo", "Ines", "Jonas", "Kira", "Lucas", "Mia", "Nora", "Omar",
    "Pia", "Rita", "Simon", "Theo",
]

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Japan", "Tokyo"), ("Canada", "Ottawa"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"),
    ("Peru", "Lima"), ("Norway", "Oslo"), ("Greece", "Athens"), ("Poland", "Warsaw"),
    ("Austria", "Vienna"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("Chile", "Santiago"),
]

COLOURS = [
    ("banana", "yellow"), ("lemon", "yellow"), ("tomato", "red"), ("strawberry", "red"),
    ("leaf", "green"), ("frog", "green"), ("cloud", "white"), ("snowball", "white"),
    ("crow", "black"), ("carrot", "orange"), ("plum", "purple"), ("blueberry", "blue"),
]

NUMBERS = range(1, 10)  # the sums use small numbers a tiny model can learn
# The SFT corpus repeats every sum prompt SUM_REPEATS times, SUM_CORRECT of them with the right
# answer and the others one too many, and every greeting prompt GREETING_REPEATS times,
# GREETING_POLITE of them polite and the others curt. The same ratio for every prompt makes the
# sloppiness a general habit of the SFT model rather than a per-prompt accident, which is what a
# few DPO pairs can correct on prompts they never show.
SUM_REPEATS, SUM_CORRECT = 20, 8
GREETING_REPEATS, GREETING_POLITE = 16, 6
# The DPO pairs reject one too many (the habit) and also one too few, so that DPO learns "exact"
# rather than "lower" (with only the first, longer runs overshoot to one too few).
REJECTED_SUM_OFFSETS = (1, -1)


def sum_prompt(a, b):
    return f"What is {a} plus {b}?"


def sum_answer(a, b, c):
    return f" {a} plus {b} is {c}."


def greeting_prompt(name):
    return f"Give {name} a greeting."


def polite_greeting(name):
    return f" Good morning, {name}! It is lovely to see you."


def curt_greeting(name):
    return f" {name}. What do you want?"


def filler_row(rng):
    """A row of one of the always-consistent templates (they make the corpus an instruction set,
    not just the two behaviours DPO changes)."""
    kind = rng.randrange(5)
    if kind == 0:
        n = rng.randint(1, 30)
        return f"What comes after {n}?", f" After {n} comes {n + 1}."
    if kind == 1:
        country, city = rng.choice(CAPITALS)
        return f"What is the capital of {country}?", f" The capital of {country} is {city}."
    if kind == 2:
        thing, colour = rng.choice(COLOURS)
        return f"What colour is a {thing}?", f" A {thing} is {colour}."
    if kind == 3:
        n = rng.randint(1, 30)
        return f"Is {n} even or odd?", f" {n} is {'even' if n % 2 == 0 else 'odd'}."
    name = rng.choice(NAMES)
    return f"Say goodbye to {name}.", f" Goodbye, {name}! Have a wonderful day."


def split_half(items, rng):
    items = list(items)
    rng.shuffle(items)
    half = len(items) // 2
    return sorted(items[:half]), sorted(items[half:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--rows", type=int, default=4000, help="SFT rows")
    ap.add_argument("--extra-jsonl", action="append", default=[],
                    help="JSONL file whose string fields are added to spm_text.txt only (broader tokenizer "
                         "coverage, e.g. the GUI's demo labeling pairs)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)

    sums = [(a, b) for a in NUMBERS for b in NUMBERS]
    # Prompts split once: DPO pairs teach on one half, demo-eval measures on the other.
    dpo_sums, eval_sums = split_half(sums, rng)
    dpo_names, eval_names = split_half(NAMES, rng)

    sft = []
    for a, b in sums:
        for i in range(SUM_REPEATS):
            sft.append((sum_prompt(a, b), sum_answer(a, b, a + b + (0 if i < SUM_CORRECT else 1))))
    for name in NAMES:
        for i in range(GREETING_REPEATS):
            sft.append((greeting_prompt(name), polite_greeting(name) if i < GREETING_POLITE else curt_greeting(name)))
    if len(sft) > args.rows:
        ap.error(f"--rows must be at least {len(sft)}")
    while len(sft) < args.rows:
        sft.append(filler_row(rng))
    rng.shuffle(sft)

    pairs = []
    for a, b in dpo_sums:
        for offset in REJECTED_SUM_OFFSETS:
            pairs.append({"prompt": sum_prompt(a, b), "chosen": sum_answer(a, b, a + b),
                          "rejected": sum_answer(a, b, a + b + offset)})
    for name in dpo_names:
        pairs.append({"prompt": greeting_prompt(name), "chosen": polite_greeting(name),
                      "rejected": curt_greeting(name)})
    rng.shuffle(pairs)

    evals = []
    for a, b in eval_sums:
        evals.append({"prompt": sum_prompt(a, b), "category": "sum",
                      "expect_contains": f" is {a + b}.",
                      "reject_contains": [f" is {a + b + o}." for o in REJECTED_SUM_OFFSETS]})
    for name in eval_names:
        evals.append({"prompt": greeting_prompt(name), "category": "greeting",
                      "expect_contains": "lovely to see you", "reject_contains": "What do you want"})

    def dump(path, rows):
        with open(os.path.join(args.out_dir, path), "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    dump("sft.jsonl", [{"prompt": p, "completion": c} for p, c in sft])
    dump("dpo_pairs.jsonl", pairs)
    dump("demo_eval.jsonl", evals)
    with open(os.path.join(args.out_dir, "spm_text.txt"), "w", encoding="utf-8") as f:
        for p, c in sft:
            f.write(p + c + "\n")
        for path in args.extra_jsonl:
            with open(path, encoding="utf-8") as extra:
                for line in extra:
                    if line.strip():
                        for value in json.loads(line).values():
                            if isinstance(value, str):
                                for text_line in value.splitlines():
                                    if text_line.strip():
                                        f.write(text_line + "\n")
    print(json.dumps({"sft_rows": len(sft), "dpo_pairs": len(pairs), "eval_prompts": len(evals)}))


if __name__ == "__main__":
    main()
