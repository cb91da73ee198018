"""The head sweep on real photos: best-of-sweep head vs the default head, and its wall time.

Uses `bench.recipe`'s prepared split and MobileNet features of
`../shared/data/fashion-mnist-3k` (real ImageNet weights, 128 px), trains the default
head, then sweeps `--trials` heads (the default first) and prints validation and test
accuracy of both (the sweep chooses by validation only) and the seconds each took.

Usage: .venv/bin/python -m bench.head_sweep [--trials 12]
"""

import argparse
import json
import os
import time

import numpy as np

from bench.common import machine
from bench.recipe import prepare
from kftransfer.components.core import shards
from kftransfer.components.core.classifier import to_probabilities
from kftransfer.components.core.config import HeadConfig
from kftransfer.components.core.head_sweep import sweep_heads
from kftransfer.components.core.heads import train_head


def test_accuracy(model, features_uri: str) -> float:
    """Accuracy of a head on the cached test features."""
    features, labels = shards.load_split(features_uri, "test")
    probabilities = to_probabilities(model.predict(features.astype(np.float32), verbose=0))
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared")
    )
    parser.add_argument("--workdir", default="/tmp/kft-bench-recipe")
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    features = prepare(os.path.abspath(args.shared), args.workdir)["features"]
    start = time.perf_counter()
    default = train_head(features, HeadConfig())
    default_seconds = time.perf_counter() - start
    start = time.perf_counter()
    (best, chosen), trials = sweep_heads(features, HeadConfig(head_sweep=args.trials), train_head)
    sweep_seconds = time.perf_counter() - start
    row = {
        "default": {
            "val": default.summary()["val_accuracy"],
            "test": test_accuracy(default.model, features),
            "seconds": round(default_seconds, 1),
        },
        "sweep": {
            "trials": len(trials),
            "chosen": next(t for t in trials if t["chosen"]),
            "val": best.summary()["val_accuracy"],
            "test": test_accuracy(best.model, features),
            "seconds": round(sweep_seconds, 1),
        },
        "all_trials": trials,
    }
    print(f"bench/head_sweep.py: fashion-mnist-3k, mobilenet 128 px features; {machine()}")
    for name in ("default", "sweep"):
        r = row[name]
        print(f"  {name:8s} head: val {r['val']:.4f}  test {r['test']:.4f}  {r['seconds']} s")
    chosen = row["sweep"]["chosen"]
    print(f"  chosen trial {chosen['trial']} of {len(trials)}: " + ", ".join(
        f"{k}={chosen[k]!r}" for k in ("head_learning_rate", "head_units", "head_dropout",
                                       "head_label_smoothing")))  # fmt: skip
    print(f"  sweep / one head wall time = {sweep_seconds / default_seconds:.1f}")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
