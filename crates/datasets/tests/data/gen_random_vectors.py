#!/usr/bin/env python3
"""Generate reference vectors for the CPython `random` port in `src/pyrandom.rs`.

Standard library only. Run from this folder with the CPython the vectors should
pin (they were generated with CPython 3.11; MT19937, integer seeding,
`getrandbits`, `_randbelow`, `sample`, `shuffle` and `random` have been stable
since 3.2):

    python3 gen_random_vectors.py > random_vectors.json

Every integer that may exceed 2**53 is written as a decimal string, and every
float as the decimal string of its IEEE-754 bit pattern, so that the JSON
round-trips exactly.
"""
import json
import math
import random
import struct
import sys
from collections import OrderedDict

SEEDS = [0, 1, 2, 3, 5, 42, 1234, 2**31 - 1, 2**32 - 1, 2**32, 2**32 + 1,
         2**40 + 7, 2**63 - 1, 2**64 - 1, 2**64, 2**100 + 12345, -1, -7, -(2**33)]


def f64_bits(x):
    return str(struct.unpack("<Q", struct.pack("<d", x))[0])


def seed_case(seed):
    r = random.Random(seed)
    words = [r.getrandbits(32) for _ in range(8)]
    r = random.Random(seed)
    bits = []
    for k in [0, 1, 2, 7, 16, 31, 32, 33, 48, 63, 64, 65, 96, 100, 127, 128]:
        bits.append([k, str(r.getrandbits(k))])
    r = random.Random(seed)
    floats = [f64_bits(r.random()) for _ in range(6)]
    r = random.Random(seed)
    below = []
    for n in [1, 2, 3, 5, 10, 17, 100, 1000, 2**31 + 5, 2**32, 2**40 + 3]:
        below.append([str(n), str(r._randbelow(n))])
    return {"seed": str(seed), "words": words, "getrandbits": bits,
            "random_bits": floats, "randbelow": below}


def sample_cases():
    cases = []
    ks = [0, 1, 2, 4, 5, 6, 8, 16, 32]
    ns = [1, 2, 4, 5, 16, 20, 21, 22, 40, 84, 85, 86, 120, 300, 1300]
    for seed in [1, 2, 3, 7, 2**35 + 1]:
        for n in ns:
            for k in ks:
                if k > n:
                    continue
                r = random.Random(seed)
                s = r.sample(range(n), k)
                # Continue the stream to check how much state `sample` consumed.
                after = r.getrandbits(32)
                cases.append({"seed": str(seed), "n": n, "k": k, "sample": s, "next_word": after})
    return cases


def shuffle_cases():
    cases = []
    for seed in [1, 2, 3, 99]:
        for n in [0, 1, 2, 3, 10, 50]:
            r = random.Random(seed)
            x = list(range(n))
            r.shuffle(x)
            cases.append({"seed": str(seed), "n": n, "shuffled": x, "next_word": r.getrandbits(32)})
    return cases


def fewshot(labels, k):
    """Dassl's generate_fewshot_dataset on indices (repeat=False), global `random`."""
    tracker = OrderedDict()
    for idx, y in enumerate(labels):
        tracker.setdefault(y, []).append(idx)
    out = []
    for y, items in tracker.items():
        if len(items) >= k:
            out.extend(random.sample(items, k))
        else:
            out.extend(items)
    return out


def fewshot_cases():
    cases = []
    gen = random.Random(20240601)
    for case in range(6):
        n_classes = gen.randint(3, 12)
        train = []
        val = []
        for _ in range(gen.randint(40, 400)):
            train.append(gen.randrange(n_classes))
        for _ in range(gen.randint(10, 100)):
            val.append(gen.randrange(n_classes))
        draws = []
        for seed in [1, 2, 3]:
            for k in [1, 2, 4, 8, 16]:
                random.seed(seed)
                tr = fewshot(train, k)
                va = fewshot(val, min(k, 4))
                draws.append({"seed": seed, "k": k, "train": tr, "val": va})
        cases.append({"train_labels": train, "val_labels": val, "draws": draws})
    return cases


def subsample_classes(*args, subsample="all"):
    """OxfordPets.subsample_classes on (index, label) pairs."""
    if subsample == "all":
        return args
    labels = sorted({y for _, y in args[0]})
    m = math.ceil(len(labels) / 2)
    selected = labels[:m] if subsample == "base" else labels[m:]
    relabeler = {y: y_new for y_new, y in enumerate(selected)}
    return [[(i, relabeler[y]) for i, y in split if y in selected] for split in args]


def pipeline_cases():
    """The whole reference flow on one split: seed, k-shot train, min(k,4)-shot val, subsample."""
    gen = random.Random(7)
    n_classes = 7
    train = [gen.randrange(n_classes) for _ in range(150)]
    val = [gen.randrange(n_classes) for _ in range(40)]
    test = [gen.randrange(n_classes) for _ in range(30)]
    runs = []
    for seed in [1, 2, 3]:
        for k in [1, 4, 16]:
            for sub in ["all", "base", "new"]:
                random.seed(seed)
                tr = [(i, train[i]) for i in fewshot(train, k)]
                va = [(i, val[i]) for i in fewshot(val, min(k, 4))]
                te = list(enumerate(test))
                tr, va, te = subsample_classes(tr, va, te, subsample=sub)
                runs.append({"seed": seed, "k": k, "subsample": sub, "train": tr, "val": va, "test": te})
    return {"train_labels": train, "val_labels": val, "test_labels": test, "runs": runs}


def main():
    out = {
        "python": sys.version.split()[0],
        "seeds": [seed_case(s) for s in SEEDS],
        "sample": sample_cases(),
        "shuffle": shuffle_cases(),
        "fewshot": fewshot_cases(),
        "pipeline": pipeline_cases(),
    }
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
