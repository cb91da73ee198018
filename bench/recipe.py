"""Fine-tuning recipe trials on real photos, from one split, one extraction and one head.

Prepares (once per --workdir) the seed's split of `../shared/data/fashion-mnist-3k`, the
MobileNet features (real ImageNet weights, 128 px) and the default head, then fine-tunes
with the project's defaults plus the given `--param name=value` overrides and prints the
kept validation accuracy, the test accuracy with and without test-time flip averaging,
the epochs and the fine-tuning wall and CPU time. The same data and stages as `bench.real_data`
(whose three runs judge the chosen defaults), without re-running split, extraction and
head for every trial.

`--interpolate 0.7,0.8,0.9` also prints the validation and test accuracy of the weights
`(1 - a) * start + a * fine-tuned` for each `a` (WiSE-FT, Wortsman et al. 2022: the start
is the ImageNet backbone with the trained head, which fine-tuning never left the basin of).

Usage: .venv/bin/python -m bench.recipe --trial NAME [--param layer_decay=0.8 ...]
"""

import argparse
import json
import os
import time

import keras
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


def accuracy(model, paths: dict[str, str], split: str = "test") -> float:
    """Accuracy of `model` on the images of `split` (the test split by default)."""
    labels = read_labels(paths["split"])
    images = HeldOutImages.of(read_rows(paths["split"], split), labels, paths["cache"])
    probabilities, kept = images.predict(model)
    return float(np.mean(probabilities.argmax(axis=1) == images.y_true[kept]))


class StartWeights(keras.callbacks.Callback):
    """Keeps the weights fine-tuning starts from."""

    def on_train_begin(self, logs: dict | None = None) -> None:  # noqa: ARG002
        """Copies the model's weights (Keras' callback signature)."""
        self.weights = [np.copy(w) for w in self.model.get_weights()]


def interpolations(model, start: list, alphas: list[float], paths: dict[str, str]) -> list[dict]:
    """Validation and test accuracy of `(1 - a) * start + a * model` for each `a`."""
    tuned = model.get_weights()
    rows = []
    for alpha in alphas:
        model.set_weights([(1 - alpha) * s + alpha * t for s, t in zip(start, tuned, strict=True)])
        scores = {split: accuracy(model, paths, split) for split in ("validation", "test")}
        rows.append({"alpha": alpha, **scores})
    model.set_weights(tuned)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared")
    )
    parser.add_argument("--workdir", default="/tmp/kft-bench-recipe")
    parser.add_argument("--trial", default="defaults")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--interpolate", default="", metavar="A,B,...")
    args = parser.parse_args()
    paths = prepare(os.path.abspath(args.shared), args.workdir)
    overrides = {k: parse_value(v) for k, v in (p.split("=", 1) for p in args.param)}
    config = FineTuneConfig(**overrides)
    start, cpu_start = time.perf_counter(), time.process_time()
    start_weights = StartWeights()
    result = ft.fine_tune(
        paths["split"],
        paths["features"],
        paths["head"],
        config,
        callbacks=[start_weights],
        cache_uri=paths["cache"],
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    summary = result.summary()
    row = {
        "trial": args.trial,
        "overrides": overrides,
        "val": summary["val_accuracy"],
        "test": accuracy(result.model, paths),
        "test_flip": accuracy(with_flip_averaging(result.model), paths),
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
    alphas = [float(a) for a in args.interpolate.split(",") if a]
    if alphas:
        row["interpolated"] = interpolations(result.model, start_weights.weights, alphas, paths)
        for found in row["interpolated"]:
            print(
                f"  {found['alpha']:.2f} start-to-tuned: val {found['validation']:.4f}  "
                f"test {found['test']:.4f}"
            )
    print(json.dumps(row))


if __name__ == "__main__":
    main()
