"""What makes a model's numbers trustworthy: calibration, label issues, near-duplicate leakage.

Run by the evaluation on what it already has: the models' probabilities on the validation
and test splits, and the cached features of every image. Each function returns a
JSON-able dict that lands in `evaluation.json`, the report, the metrics and the card.
"""

import csv
import io
from dataclasses import dataclass

import numpy as np

from kftransfer.components.core import calibration, label_issues, shards
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.layout import Row
from kftransfer.components.core.near_duplicates import near_duplicate_search

COVERAGE_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
LISTED_PAIRS = 50  # near-duplicate pairs listed in evaluation.json and the report


def calibrate(validation: tuple, test: tuple, config: EvalConfig) -> dict:
    """Temperature scaling fitted on validation; calibration error before and after on test.

    Args:
        validation: `(probabilities [N, C], labels [N])` of the validation split.
        test: the same of the test split.
        config: `min_confidence` / `target_precision` choose the abstention threshold.

    Returns:
        `temperature` and how it was chosen (`temperature_from`), `ece_before`,
        `ece_after` (test), `min_confidence` (the threshold below which the exported model
        answers "unknown"; 0 = always answers) and how it was chosen, `reliability`
        (test, before and after: per bin confidence, accuracy, count) and `coverage`
        (test: threshold, fraction answered, their accuracy).
    """
    temperature, temperature_from = calibration.temperature_from_validation(*validation)
    test_probabilities, test_labels = test
    calibrated = calibration.apply_temperature(test_probabilities, temperature)
    threshold, chosen_by = config.min_confidence, "--min-confidence"
    if config.target_precision > 0:
        val_calibrated = calibration.apply_temperature(validation[0], temperature)
        found = calibration.confidence_for_precision(
            val_calibrated, validation[1], config.target_precision
        )
        threshold, chosen_by = (
            (found, f"the lowest reaching {config.target_precision:g} on validation")
            if found is not None
            else (1.0, f"no threshold reaches {config.target_precision:g} on validation")
        )
    return {
        "temperature": temperature,
        "temperature_from": temperature_from,
        "ece_before": calibration.expected_calibration_error(test_probabilities, test_labels),
        "ece_after": calibration.expected_calibration_error(calibrated, test_labels),
        "min_confidence": float(threshold),
        "min_confidence_chosen_by": chosen_by,
        "reliability": {
            "before": _diagram(test_probabilities, test_labels),
            "after": _diagram(calibrated, test_labels),
        },
        "coverage": [
            {"min_confidence": t, "answered": c, "accuracy": a}
            for t, c, a in calibration.coverage_curve(
                calibrated, test_labels, sorted({*COVERAGE_THRESHOLDS, float(threshold)})
            )
        ],
    }


def _diagram(probabilities: np.ndarray, labels: np.ndarray) -> list[dict]:
    diagram = calibration.reliability(probabilities, labels)
    return [
        {"confidence": float(c), "accuracy": float(a), "count": int(n)}
        for c, a, n in zip(*diagram, strict=True)
        if n
    ]


@dataclass
class KeyedFeatures:
    """Cached features of one or more splits, with each row's image."""

    features: np.ndarray
    labels: np.ndarray
    sha256: np.ndarray
    uris: list[str]

    @classmethod
    def joined(cls, *parts: "KeyedFeatures") -> "KeyedFeatures":
        """The rows of every part, in order."""
        return cls(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.sha256 for p in parts]),
            [uri for p in parts for uri in p.uris],
        )


def keyed_features(features_uri: str, split: str, rows: dict[str, Row]) -> KeyedFeatures:
    """The cached features of `split`, each row with its image URI (`rows`: sha256 -> Row)."""
    features, labels, sha256 = shards.load_keyed_split(features_uri, split)
    return KeyedFeatures(features, labels, sha256, [rows[s].uri for s in sha256.tolist()])


def find_label_issues(train: KeyedFeatures, names: list[str], config: EvalConfig) -> dict:
    """Likely-mislabelled train and validation images, from K-fold heads on cached features.

    Out-of-sample probabilities come from `config.label_issue_folds` softmax regressions
    on the features (each image scored by the one not trained on it; folds drawn with
    `config.seed`); confident learning flags the rows and ranks them by self-confidence,
    the probability of the given label.

    Returns:
        `estimated` (the count confident learning estimates) and `issues`, most likely
        first: `uri`, `given`, `suggested`, `score` (p of the given label).
    """
    if config.label_issue_folds < 2 or len(train.labels) < 2 * config.label_issue_folds:
        return {"estimated": 0, "issues": [], "skipped": "too few images or folds"}
    probabilities = label_issues.out_of_sample_probabilities(
        train.features, train.labels, len(names), config.label_issue_folds, config.seed
    )
    found = label_issues.find_label_issues(probabilities, train.labels, "self_confidence")
    return {
        "estimated": found.estimated_count,
        "issues": [
            {
                "uri": train.uris[i],
                "given": names[train.labels[i]],
                "suggested": names[suggested],
                "score": float(score),
            }
            for i, suggested, score in zip(
                found.indices, found.suggested_labels, found.scores, strict=True
            )
        ],
    }


def find_near_duplicates(train: KeyedFeatures, test: KeyedFeatures, config: EvalConfig) -> dict:
    """Near-duplicate images by cosine similarity of their features (exact, in blocks).

    Train+validation pairs are searched within each class, the only pairs reported.

    Returns:
        `threshold`; `leaked`: test images with a near-twin in train+validation (URIs of
        both, similarity), and `leaked_test_sha256`; `within_class`: train+validation
        pairs of the same class. Lists hold at most `LISTED_PAIRS` pairs; counts are
        complete.
    """
    threshold = config.near_duplicate_threshold
    leaked = near_duplicate_search(test.features, train.features, threshold, LISTED_PAIRS)
    same_count, same = _within_classes(train, threshold)
    return {
        "threshold": threshold,
        "leaked_count": int(leaked.twinned.sum()),
        "leaked": [
            {"test": test.uris[q], "train": train.uris[r], "similarity": float(s)}
            for q, r, s in leaked.pairs
        ],
        "leaked_test_sha256": sorted(set(np.asarray(test.sha256)[leaked.twinned].tolist())),
        "within_class_count": same_count,
        "within_class": [
            {"a": train.uris[a], "b": train.uris[b], "similarity": float(s)} for a, b, s in same
        ],
    }


def _within_classes(train: KeyedFeatures, threshold: float) -> tuple[int, list[tuple]]:
    """All near-duplicate pairs within a class: their count, and the first LISTED_PAIRS.

    Each class is searched on its own (a tenth of the work with ten classes, and no pair
    across classes computed only to be dropped).
    """
    labels, count, listed = np.asarray(train.labels), 0, []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        features = train.features[rows]
        found = near_duplicate_search(
            features, features, threshold, LISTED_PAIRS - len(listed), exclude_self=True
        )
        count += found.count
        listed += [(int(rows[a]), int(rows[b]), s) for a, b, s in found.pairs]
    return count, sorted(listed, key=lambda pair: (pair[0], -pair[2], pair[1]))


def label_issues_csv(found: dict) -> str:
    """`label_issues.csv`: `uri,given,suggested,score`, most likely mislabelled first.

    Trim it to the images that really are wrong and pass it to `--exclude`. A class name
    a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) is written after a `'`,
    which spreadsheets show as text: it is a file to open in one, and class names come
    from folder names anyone with write access to the bucket chose.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["uri", "given", "suggested", "score"])
    for issue in found["issues"]:
        given, suggested = (_as_text(issue[key]) for key in ("given", "suggested"))
        writer.writerow([issue["uri"], given, suggested, f"{issue['score']:.4f}"])
    return out.getvalue()


def _as_text(cell: str) -> str:
    """`cell`, after a `'` when a spreadsheet would read it as a formula."""
    return f"'{cell}" if cell.startswith(("=", "+", "-", "@", "\t", "\r")) else cell
