"""Trust on real photos: label errors found from cached features, and calibration of the head.

On `../shared/data/fashion-mnist-3k` split with the pipeline's defaults (seed 0), features
of MobileNet with the real ImageNet weights at 128 px (`extract_features`):

1. 5% of the train+validation labels flipped at random (seeded, in memory: the data is
   untouched), then `trust.find_label_issues` as evaluation runs it: recall and precision
   of the flagged list, and the best recall at precision >= 0.5 along its ranking
   (target: >= 0.7); its seconds / the head training's (target: <= ~2);
2. the head (`train_head`, default settings) calibrated on validation: test ECE after /
   before (target <= 0.5), the ECE a perfectly calibrated model with the same confidences
   shows on as many images (the sampling floor), and test accuracy before and after.

Usage: .venv/bin/python -m bench.trust [--seeds 3]
"""

import argparse
import os
import tempfile

import numpy as np

from bench.common import machine, timed
from kftransfer.components.core import shards, trust
from kftransfer.components.core.calibration import apply_temperature, expected_calibration_error
from kftransfer.components.core.classifier import to_probabilities
from kftransfer.components.core.config import EvalConfig, ExtractConfig, HeadConfig, SplitConfig
from kftransfer.components.core.features import extract_features
from kftransfer.components.core.heads import train_head
from kftransfer.components.core.layout import SPLITS, read_rows
from kftransfer.components.core.split import split_dataset, write_split

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
FLIPPED = 0.05


def flipped_copy(labels: np.ndarray, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with FLIPPED of them moved to another class at random, and which ones."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(labels), int(FLIPPED * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[chosen] = (labels[chosen] + rng.integers(1, classes, len(chosen))) % classes
    return noisy, chosen


def recall_at_precision(ranked: np.ndarray, wrong: np.ndarray, precision: float = 0.5):
    """The best recall of a top-k cut of `ranked` with precision >= `precision`, and k."""
    hits = np.cumsum(np.isin(ranked, wrong))
    ok = np.flatnonzero(hits / np.arange(1, len(hits) + 1) >= precision)
    return (hits[ok[-1]] / len(wrong), int(ok[-1] + 1)) if ok.size else (0.0, 0)


def label_issue_rows(features_uri: str, splits_uri: str, names: list[str], seeds: int):
    """Per seed: recall/precision of the flagged list, recall at precision 0.5, seconds."""
    rows = {r.sha256: r for split in SPLITS for r in read_rows(splits_uri, split)}
    clean = trust.KeyedFeatures.joined(
        *(trust.keyed_features(features_uri, split, rows) for split in ("train", "validation"))
    )
    results = []
    for seed in range(seeds):
        labels, wrong = flipped_copy(clean.labels, len(names), seed)
        noisy = trust.KeyedFeatures(clean.features, labels, clean.sha256, clean.uris)
        seconds, found = timed(trust.find_label_issues, noisy, names, EvalConfig())
        flagged = np.array([clean.uris.index(i["uri"]) for i in found["issues"]])
        hits = np.isin(flagged, wrong).sum()
        results.append(
            (
                hits / len(wrong),
                hits / max(len(flagged), 1),
                *recall_at_precision(flagged, wrong),
                seconds,
            )
        )
    return results


def head_calibration(features_uri: str) -> tuple[float, dict, float]:
    """Seconds to train the default head; its calibration; test accuracy after temperature."""
    seconds, result = timed(train_head, features_uri, HeadConfig())

    def probabilities(split: str):
        features, labels = shards.load_split(features_uri, split)
        return to_probabilities(
            result.model.predict(features.astype(np.float32), verbose=0)
        ), labels

    validation, test = probabilities("validation"), probabilities("test")
    calibrated = trust.calibrate(validation, test, EvalConfig())
    after = apply_temperature(test[0], calibrated["temperature"]).argmax(axis=1) == test[1]
    calibrated["accuracy_before"] = float(np.mean(test[0].argmax(axis=1) == test[1]))
    calibrated["ece_floor"] = ece_of_a_calibrated_model(
        apply_temperature(test[0], calibrated["temperature"])
    )
    return seconds, calibrated, float(after.mean())


def ece_of_a_calibrated_model(probabilities: np.ndarray, draws: int = 200) -> float:
    """Mean ECE of a perfectly calibrated model with these confidences, on this many images.

    Labels are drawn from the probabilities themselves, so the model is calibrated by
    construction; what ECE remains is the sampling noise of 15 bins over N images.
    """
    rng = np.random.default_rng(0)
    cumulative = np.cumsum(probabilities, axis=1)
    eces = []
    for _ in range(draws):
        u = rng.random((len(probabilities), 1)) * cumulative[:, -1:]
        labels = (u > cumulative).sum(axis=1)
        eces.append(expected_calibration_error(probabilities, labels))
    return float(np.mean(eces))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="label-flip seeds")
    args = parser.parse_args()
    weights = os.path.join(SHARED, "weights", "mobilenet_1.0_224_imagenet_notop.weights.h5")
    with tempfile.TemporaryDirectory() as tmp:
        split = split_dataset(os.path.join(SHARED, "data", "fashion-mnist-3k"), SplitConfig())
        write_split(split, f"{tmp}/split")
        config = ExtractConfig(backbone="mobilenet", weights=weights, image_size=128)
        extract_features(f"{tmp}/split", f"{tmp}/features", config)
        head_seconds, calibrated, accuracy_after = head_calibration(f"{tmp}/features")
        issues = label_issue_rows(f"{tmp}/features", f"{tmp}/split", split.labels, args.seeds)
    print(
        f"bench/trust.py: fashion-mnist-3k, mobilenet (ImageNet weights) at 128 px, "
        f"{FLIPPED:.0%} of train+validation labels flipped, {args.seeds} seeds; {machine()}"
    )
    for seed, (recall, precision, at_half, top, seconds) in enumerate(issues):
        print(
            f"  seed {seed}: flagged list recall {recall:.3f} precision {precision:.3f}; "
            f"recall at precision >= 0.5 {at_half:.3f} (top {top}); {seconds:.2f} s"
        )
    mean = np.mean(np.array(issues), axis=0)
    print(f"  mean recall at precision >= 0.5           {mean[2]:.3f}")
    print(f"  label-issue search / head training         {mean[4] / head_seconds:.2f}   "
          f"({mean[4]:.2f} vs {head_seconds:.2f} s)")  # fmt: skip
    ratio = calibrated["ece_after"] / calibrated["ece_before"]
    print(f"  head: test ECE after / before              {ratio:.2f}   "
          f"({calibrated['ece_after']:.4f} vs {calibrated['ece_before']:.4f}, "
          f"T={calibrated['temperature']:.3f})")  # fmt: skip
    print(f"  head: ECE of a perfectly calibrated model  {calibrated['ece_floor']:.4f}   "
          f"(same confidences and N; the floor of 'after')")  # fmt: skip
    print(f"  head: test accuracy before / after          {calibrated['accuracy_before']:.4f} / "
          f"{accuracy_after:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
