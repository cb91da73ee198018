"""Evaluation on the held-out test split: head-only vs fine-tuned vs the production model."""

from dataclasses import dataclass

import keras
import numpy as np

from kftransfer.components.core import layout, pixels, trust
from kftransfer.components.core.blessing import Verdict, bless
from kftransfer.components.core.chunk_store import pixel_store
from kftransfer.components.core.classifier import (
    predict_batches,
    predict_images,
    to_probabilities,
    with_flip_averaging,
)
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.evaluation_result import Evaluation
from kftransfer.components.core.layout import read_labels, read_rows, stage_model
from kftransfer.components.core.metrics import classification_metrics
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.production import compare_with_production
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.significance import skill_reasons


@dataclass
class HeldOutImages:
    """The test split's images, and how a model's predictions on them are computed.

    From the pixel store under `cache_uri` when there is one (extraction filled it), else
    by decoding each image: the same pixels either way.
    """

    uris: list[str]
    sha256s: list[str]
    y_true: np.ndarray
    cache_uri: str = ""

    @classmethod
    def of(cls, rows: list[layout.Row], labels: list[str], cache_uri: str) -> "HeldOutImages":
        """The images of split `rows`."""
        y_true = np.array([labels.index(row.label) for row in rows], dtype=np.int64)
        return cls([r.uri for r in rows], [r.sha256 for r in rows], y_true, cache_uri)

    def predict(self, model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities `[M, classes]` of the images that decode, and their indices `[M]`."""
        if not self.cache_uri:
            return predict_images(model, self.uris)
        size = model.input_shape[1]
        store = pixel_store(self.cache_uri, size)
        pixels.fill(store, self.uris, self.sha256s, size)
        batches = pixels.dataset(store, self.sha256s, [0] * len(self.uris), 32)
        return predict_batches(model, batches)


def check_read(images: int, read: int, split: str) -> None:
    """Says when images of a split could not be read at evaluation (moved or deleted since).

    Raises:
        UserError: none could: there is nothing to judge the model on.
    """
    why = "moved or deleted since the split? run again to split anew"
    if images and not read:
        raise UserError(f"none of the {images} {split} images could be read ({why})")
    if read < images:
        LOGGER.warning(
            "%d of the %d %s images could not be read (%s): the fine-tuned model is judged "
            "on the %d read, the head-only one on all (from the cached features)",
            images - read, images, split, why, read,
        )  # fmt: skip


def evaluate_stages(
    splits_uri: str,
    features_uri: str,
    head_stage: str,
    model_stage: str,
    export_uri: str,
    config: EvalConfig,
    cache_uri: str = "",
) -> Evaluation:
    """Evaluates both trained stages on the test split, compares with production, blesses or not.

    Also what makes the numbers trustworthy: the no-skill gate (first in the verdict),
    temperature scaling fitted on validation, likely label errors among the train and
    validation images, and test images with a near-duplicate in train/validation.

    The head-only model is evaluated on the cached test features (the same numbers as
    backbone + head on the test images), the fine-tuned model on the test images, the
    production model (`export_uri`'s latest version) on the same images.

    Args:
        splits_uri: the split folder.
        features_uri: the features folder.
        head_stage: the trained head's stage folder.
        model_stage: the fine-tuned model's stage folder.
        export_uri: the export destination whose latest version is in production ('' = none).
        config: the thresholds.
        cache_uri: the cache root whose pixel store holds the test images ('' to decode).
    """
    labels = read_labels(splits_uri)
    rows = {split: read_rows(splits_uri, split) for split in layout.SPLITS}
    by_sha = {row.sha256: row for split_rows in rows.values() for row in split_rows}
    head_model = load_model(stage_model(head_stage))
    cached = {split: trust.keyed_features(features_uri, split, by_sha) for split in layout.SPLITS}
    head, head_val, head_test, head_right = _head_on_features(cached, head_model, labels, config)
    test = HeldOutImages.of(rows["test"], labels, cache_uri)
    candidate = load_model(stage_model(model_stage))
    if config.test_time_flip:
        candidate = with_flip_averaging(candidate)
    probabilities, kept = test.predict(candidate)
    check_read(len(test.uris), len(kept), "test")
    y_test = test.y_true[kept]
    fine_tuned = classification_metrics(y_test, probabilities, labels, config.top_k)
    kept_shas = [test.sha256s[i] for i in kept]
    skill = _skill_reasons(labels, config, y_test, probabilities, kept_shas, head_right)
    rule = layout.split_rule(layout.read_stats(splits_uri))
    production = compare_with_production(export_uri, labels, rule, test, config.top_k, candidate)
    validation = HeldOutImages.of(rows["validation"], labels, cache_uri)
    val_probabilities, val_kept = validation.predict(candidate)
    check_read(len(validation.uris), len(val_kept), "validation")
    calibrated = trust.calibrate(
        (val_probabilities, validation.y_true[val_kept]), (probabilities, y_test), config
    )
    verdict = bless(
        fine_tuned,
        production.metrics,
        config,
        production.note,
        same_weights=production.same_weights,
        skill=skill,
        labels=labels,
        min_confidence=calibrated["min_confidence"],
        class_change=production.class_change,
    )
    _log_verdict(head, fine_tuned, production.metrics, verdict)
    trainval = trust.KeyedFeatures.joined(cached["train"], cached["validation"])
    right = dict(zip(kept_shas, (probabilities.argmax(axis=1) == y_test).tolist(), strict=True))
    duplicates = _near_duplicates(trainval, cached["test"], right, config)
    return Evaluation(
        labels=labels,
        head=head,
        fine_tuned=fine_tuned,
        production=production.metrics,
        production_version=production.version,
        verdict=verdict,
        misclassified=_misclassified(
            test.uris, test.y_true, probabilities, kept, labels, config.misclassified_examples
        ),
        training={
            "head": layout.read_stage_summary(head_stage),
            "fine_tuned": layout.read_stage_summary(model_stage),
        },
        inputs={
            "splits": splits_uri,
            "features": features_uri,
            "head": head_stage,
            "model": model_stage,
        },
        calibration={
            "fine_tuned": calibrated,
            "head": trust.calibrate(head_val, head_test, config),
        },
        label_issues=trust.find_label_issues(trainval, labels, config),
        near_duplicates=duplicates,
        test_time_flip=config.test_time_flip,
        split_rule=rule,
        feature_spec=layout.FeatureSpec.from_manifest(layout.read_manifest(features_uri)).to_json(),
    )


def _skill_reasons(labels, config, y_test, probabilities, kept_shas, head_right):
    """The no-skill gate's lines: against the best constant answer, and against the head."""
    paired = set(kept_shas) <= set(head_right)  # the head saw every image the model did
    return skill_reasons(
        y_test,
        probabilities.argmax(axis=1),
        labels,
        config.skill_alpha,
        np.array([head_right[s] for s in kept_shas]) if paired else None,
    )


def _near_duplicates(trainval, test_features, right: dict[str, bool], config) -> dict:
    """`trust.find_near_duplicates`, plus the fine-tuned test accuracy without the leaked."""
    found = trust.find_near_duplicates(trainval, test_features, config)
    leaked = set(found.pop("leaked_test_sha256"))
    clean = [ok for sha, ok in right.items() if sha not in leaked]
    found["accuracy_without_leaked"] = float(np.mean(clean)) if clean else None
    return found


def _log_verdict(head: dict, fine_tuned: dict, production: dict | None, verdict: Verdict) -> None:
    compared = f", production {production['accuracy']:.4f}" if production else ""
    LOGGER.info(
        "test accuracy: head-only %.4f, fine-tuned %.4f%s; blessed: %s",
        *(head["accuracy"], fine_tuned["accuracy"], compared, verdict.blessed),
    )
    for reason in verdict.reasons:
        LOGGER.info("  %s", reason)


def _head_on_features(cached: dict, head: keras.Model, labels: list[str], config):
    """The head-only model on the cached features (`cached`: split -> `KeyedFeatures`).

    Returns:
        its test metrics, `(probabilities, labels)` of validation and of test, and whether
        it got each test image right (by sha256).
    """

    def probabilities(split: str) -> np.ndarray:
        features = cached[split].features.astype(np.float32)
        return to_probabilities(head.predict(features, verbose=0))

    test, y_test = probabilities("test"), cached["test"].labels
    metrics = classification_metrics(y_test, test, labels, config.top_k)
    right = (test.argmax(axis=1) == y_test).tolist()
    validation = (probabilities("validation"), cached["validation"].labels)
    return (
        metrics,
        validation,
        (test, y_test),
        dict(zip(cached["test"].sha256.tolist(), right, strict=True)),
    )


def _misclassified(uris, y_true, probabilities, kept, labels, limit: int) -> list[dict]:
    """The `limit` most confident mistakes of the fine-tuned model."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true[kept])
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:limit]
    return [
        {
            "uri": uris[kept[i]],
            "true": labels[y_true[kept[i]]],
            "predicted": labels[predicted[i]],
            "probability": float(probabilities[i, predicted[i]]),
        }
        for i in wrong
    ]
