"""How often a model that answers one class passes the no-skill gate: old and new baseline.

The split assigns each image by its content hash (`split.assign_split`), so with classes
of equal size the train split's largest class is often not the test split's. Simulated
with the real `assign_split` on random hashes, the default fractions (0.15 / 0.15), and
the real binomial test at the default alpha 0.01: every (split, class) pair is one model
collapsed onto that class, judged against always answering the train split's largest
class (the gate before) and the test split's most frequent one (the gate now). Seeded;
a few seconds.

Usage: .venv/bin/python -m bench.no_skill_gate [--splits 1000]
"""

import argparse
import hashlib

import numpy as np

from kftransfer.components.core.significance import beats_baseline, best_constant_answer
from kftransfer.components.core.split import assign_split

SHAPES = ((5, 100), (10, 20), (30, 10), (100, 8))  # classes, images per class


def pass_rates(classes: int, per_class: int, splits: int) -> tuple[float, float]:
    """Shares of one-class models passing against the old and the new baseline."""
    old = new = cases = 0
    for trial in range(splits):
        train, test = np.zeros(classes, int), []
        for image in range(classes * per_class):
            sha = hashlib.sha256(f"{classes}:{per_class}:{trial}:{image}".encode()).hexdigest()
            where = assign_split(sha, 0, 0.15, 0.15)
            train[image % classes] += where == "train"
            test += [image % classes] * (where == "test")
        y = np.array(test, dtype=np.int64)
        before = float(np.mean(y == int(np.argmax(train)))) if y.size else 0.0
        _, now = best_constant_answer(y, classes)
        for answer in range(classes):
            right = int(np.sum(y == answer))
            old += beats_baseline(right, len(y), before).passed
            new += beats_baseline(right, len(y), now).passed
            cases += 1
    return old / cases, new / cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=1000)
    args = parser.parse_args()
    print(f"bench/no_skill_gate.py: one-class models passing the no-skill gate, {args.splits} "
          "splits per shape")  # fmt: skip
    for classes, per_class in SHAPES:
        before, now = pass_rates(classes, per_class, args.splits)
        print(
            f"  {classes:3d} classes x {per_class:3d} images: {before:6.1%} against the train "
            f"split's largest class, {now:6.1%} against the test split's most frequent"
        )


if __name__ == "__main__":
    main()
