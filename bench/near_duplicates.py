"""The near-duplicate search within train+validation: every pair then filtered, vs by class.

The evaluation reports near-duplicate pairs of the same class in train+validation. The
search used to compute every pair of the whole set in one pass over the blocks above the
diagonal, keep each as a Python tuple, and drop the pairs across classes (`before`, that
code as it was at 2556309); it now searches each class on its own and keeps only the
listed pairs (`trust.find_near_duplicates`' within-class search). Same inputs, same
count, side by side: the ratio of seconds (before / now), and each one's peak traced
memory, on random features of `--classes` balanced classes with a `--burst` of
near-identical rows in one class.

Usage: .venv/bin/python -m bench.near_duplicates [--rows 8000 32000] [--classes 10]
"""

import argparse
import time
import tracemalloc

import numpy as np

from bench.common import machine, print_ratios
from kftransfer.components.core import trust
from kftransfer.components.core.near_duplicates import BLOCK, _unit_rows

THRESHOLD = 0.95


def features(rows: int, classes: int, burst: int, dim: int = 1024):
    """Random float16 features (no pair near), with `burst` near-identical rows in class 0."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(rows, dim)).astype(np.float32)
    labels = np.arange(rows) % classes
    twins = np.flatnonzero(labels == 0)[:burst]
    vectors[twins] = vectors[twins[0]] + 1e-3 * rng.normal(size=(len(twins), dim))
    return vectors.astype(np.float16), labels


def measured(search) -> tuple[int, float, int]:
    """(pairs counted, seconds, peak traced bytes) of one search."""
    tracemalloc.start()
    start = time.perf_counter()
    count = search()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return count, seconds, peak


def before(vectors, labels, block: int = BLOCK) -> int:
    """The search as it was: every pair above the diagonal as a tuple, then the filter."""
    unit = _unit_rows(vectors)
    found = []
    for q in range(0, len(unit), block):
        for r in range(q, len(unit), block):
            similarity = unit[q : q + block] @ unit[r : r + block].T
            rows, columns = np.nonzero(similarity >= THRESHOLD)
            keep = columns + r > rows + q
            rows, columns = rows[keep], columns[keep]
            found.append((rows + q, columns + r, similarity[rows, columns]))
    queries, references, similarities = (np.concatenate(c) for c in zip(*found, strict=True))
    order = np.lexsort((references, -similarities, queries))
    pairs = [
        (int(i), int(j), float(s))
        for i, j, s in zip(queries[order], references[order], similarities[order], strict=True)
    ]
    return len([p for p in pairs if labels[p[0]] == labels[p[1]]])


def now(vectors, labels) -> int:
    keyed = trust.KeyedFeatures(vectors, labels, np.array([""] * len(labels)), [""] * len(labels))
    return trust._within_classes(keyed, THRESHOLD)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[8000, 32000])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--burst", type=int, default=2000, help="near-identical rows")
    args = parser.parse_args()
    results = {}
    for rows in args.rows:
        vectors, labels = features(rows, args.classes, args.burst)
        old = measured(lambda vectors=vectors, labels=labels: before(vectors, labels))
        new = measured(lambda vectors=vectors, labels=labels: now(vectors, labels))
        assert old[0] == new[0], (old[0], new[0])  # the same pairs counted
        results[f"{rows} rows: seconds before / now"] = (
            old[1] / new[1], f"{old[1]:.2f} vs {new[1]:.2f} s, {new[0]:,} pairs"
        )  # fmt: skip
        results[f"{rows} rows: peak memory before / now"] = (
            old[2] / new[2], f"{old[2] / 2**20:.0f} vs {new[2] / 2**20:.0f} MiB"
        )  # fmt: skip
    print_ratios(
        f"bench/near_duplicates.py: {args.classes} classes, a burst of {args.burst} "
        f"near-identical rows, 1024 float16 features; {machine()}",
        results,
    )


if __name__ == "__main__":
    main()
