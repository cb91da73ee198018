"""Fine-tuning recipe trials on real photos, from one split, one extraction and one head.

Prepares (once per --workdir) the seed's split of `../shared/data/fashion-mnist-3k`, the
MobileNet features (real ImageNet weights, 128 px) and the default head, then fine-tunes
with the project's defaults plus the given `--param name=value` overrides and prints the
kept validation accuracy, the test accuracy with and without test-time flip averaging,
the epochs and the fine-tuning wall and CPU time. The same data and stages as `bench.real_data`
(whose three runs judge the chosen defaults), without re-running split, extraction and
head for every trial.

Usage: .venv/bin/python -m bench.recipe --trial NAME [--param layer_decay=0.8 ...]
"""

import argparse
import json
import os
import time

import numpy as np

from bench.common import machine
from bench.real_data import parse_value
from kftransfer.components.core import fine_tune as ft
from kftransfer.components.core.classifier import with_flip_averaging
from kftransfer.components.core.config import ExtractConfig, FineTuneConfig, HeadConfig, SplitConfig
from kftransfer.components.core.evaluate import HeldOutImages
from kftransfer.components.core.features import extract_features
from kftransfer.components.core.heads import train_head
from kftransfer.components.core.layout import read_labels, read_rows
from kftransfer.components.core.model_io import save_model
from kftransfer.components.core.split import split_to_folder

WEIGHTS = "mobilenet_1.0_224_imagenet_notop.weights.h5"


def prepare(shared: str, workdir: str) -> dict[str, str]:
    """The split, features and head folders under `workdir` (made on the first call)."""
    paths = {name: os.path.join(workdir, name) for name in ("split", "features", "cache")}
    paths["head"] = os.path.join(workdir, "head.keras")
    if os.path.exists(paths["head"]):
        return paths
    source = os.path.join(shared, "data", "fashion-mnist-3k")
    split_to_folder(source, paths["split"], SplitConfig())
    extract = ExtractConfig(
        backbone="mobilenet", weights=os.path.join(shared, "weights", WEIGHTS), image_size=128
    )
    extract_features(paths["split"], paths["features"], extract, paths["cache"])
    save_model(train_head(paths["features"], HeadConfig()).model, paths["head"])
    return paths


def test_accuracy(model, paths: dict[str, str]) -> float:
    """Accuracy of `model` on the test split's images."""
    labels = read_labels(paths["split"])
    test = HeldOutImages.of(read_rows(paths["split"], "test"), labels, paths["cache"])
    probabilities, kept = test.predict(model)
    return float(np.mean(probabilities.argmax(axis=1) == test.y_true[kept]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared")
    )
    parser.add_argument("--workdir", default="/tmp/kft-bench-recipe")
    parser.add_argument("--trial", default="defaults")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    paths = prepare(os.path.abspath(args.shared), args.workdir)
    overrides = {k: parse_value(v) for k, v in (p.split("=", 1) for p in args.param)}
    config = FineTuneConfig(**overrides)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = ft.fine_tune(
        paths["split"], paths["features"], paths["head"], config, cache_uri=paths["cache"]
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    summary = result.summary()
    row = {
        "trial": args.trial,
        "overrides": overrides,
        "val": summary["val_accuracy"],
        "test": test_accuracy(result.model, paths),
        "test_flip": test_accuracy(with_flip_averaging(result.model), paths),
        "epochs": int(summary["epochs"]),
        "kept_epoch": int(summary["best_epoch"]),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),  # every thread: steadier than wall on a shared VM
    }
    print(f"bench/recipe.py: fashion-mnist-3k, mobilenet 128 px; {machine()}")
    print(
        f"  {args.trial}: val {row['val']:.4f}  test {row['test']:.4f}  "
        f"test+flip {row['test_flip']:.4f}  epochs {row['epochs']} (kept {row['kept_epoch']})  "
        f"{row['seconds']} s ({row['cpu_seconds']} CPU s)  {overrides or ''}"
    )
    print(json.dumps(row))


if __name__ == "__main__":
    main()
