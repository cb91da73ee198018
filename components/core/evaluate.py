"""Evaluation on the held-out test split: head-only vs fine-tuned vs the production model."""

from dataclasses import asdict, dataclass

import keras
import numpy as np

from kftransfer.components.core import layout, shards
from kftransfer.components.core.backbones import fingerprint
from kftransfer.components.core.blessing import Verdict, bless
from kftransfer.components.core.classifier import predict_images, to_probabilities
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.export import load_exported
from kftransfer.components.core.layout import read_labels, read_rows, stage_model
from kftransfer.components.core.metrics import classification_metrics
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.storage import join
from kftransfer.components.core.versions import latest_version

SUMMARY_METRICS = ("accuracy", "top_k_accuracy", "macro_f1", "log_loss")


@dataclass
class Evaluation:
    """Metrics of every model on the test split, the verdict, and the worst mistakes.

    Attributes:
        labels: class names in model output order.
        head: the head-only model's test metrics (`metrics.classification_metrics`).
        fine_tuned: the fine-tuned model's.
        production: the production model's on the same images, or None.
        production_version: the production version compared with (or found), or None.
        verdict: blessed or not, with every reason.
        misclassified: the fine-tuned model's most confident mistakes.
        training: each stage's training summary (validation accuracy, epochs, ...).
        inputs: the artifacts evaluated (split, features, head and model folders).
    """

    labels: list[str]
    head: dict
    fine_tuned: dict
    production: dict | None
    production_version: str | None
    verdict: Verdict
    misclassified: list[dict]
    training: dict[str, dict]
    inputs: dict[str, str]

    def to_json(self) -> dict:
        """A JSON-able dict of everything."""
        return asdict(self)

    def metrics_summary(self) -> dict[str, float]:
        """The headline test metrics of every model, flat (`fine_tuned_accuracy`, ...)."""
        summary = {}
        for name, stage in (
            ("head", self.head),
            ("fine_tuned", self.fine_tuned),
            ("production", self.production),
        ):
            for key in SUMMARY_METRICS:
                if stage and stage[key] is not None:
                    summary[f"{name}_{key}"] = stage[key]
        return {**summary, "blessed": float(self.verdict.blessed)}

    def verdict_summary(self) -> dict:
        """The verdict with every reason, and the production version compared with."""
        return {
            "blessed": self.verdict.blessed,
            "reasons": self.verdict.reasons,
            "production_version": self.production_version or "",
        }


def evaluate_stages(
    splits_uri: str,
    features_uri: str,
    head_stage: str,
    model_stage: str,
    export_uri: str,
    config: EvalConfig,
) -> Evaluation:
    """Evaluates both trained stages on the test split, compares with production, blesses or not.

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
    """
    labels = read_labels(splits_uri)
    head = _head_metrics(features_uri, stage_model(head_stage), labels, config)
    rows = read_rows(splits_uri, "test")
    y_true = np.array([labels.index(row.label) for row in rows])
    uris = [row.uri for row in rows]
    candidate = load_model(stage_model(model_stage))
    probabilities, kept = predict_images(candidate, uris)
    fine_tuned = classification_metrics(y_true[kept], probabilities, labels, config.top_k)
    production, version, note, same = _production(
        export_uri, labels, uris, y_true, config, candidate
    )
    verdict = bless(fine_tuned, production, config, note, same_weights=same)
    _log_verdict(head, fine_tuned, production, verdict)
    return Evaluation(
        labels=labels,
        head=head,
        fine_tuned=fine_tuned,
        production=production,
        production_version=version,
        verdict=verdict,
        misclassified=_misclassified(
            uris, y_true, probabilities, kept, labels, config.misclassified_examples
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
    )


def _log_verdict(head: dict, fine_tuned: dict, production: dict | None, verdict: Verdict) -> None:
    compared = f", production {production['accuracy']:.4f}" if production else ""
    LOGGER.info(
        "test accuracy: head-only %.4f, fine-tuned %.4f%s; blessed: %s",
        *(head["accuracy"], fine_tuned["accuracy"], compared, verdict.blessed),
    )
    for reason in verdict.reasons:
        LOGGER.info("  %s", reason)


def _head_metrics(features_uri: str, head_uri: str, labels: list[str], config: EvalConfig) -> dict:
    """The head-only model's metrics on the cached test features."""
    features, y_true = shards.load_split(features_uri, "test")
    outputs = load_model(head_uri).predict(features.astype(np.float32), verbose=0)
    return classification_metrics(y_true, to_probabilities(outputs), labels, config.top_k)


def _production(destination, labels, uris, y_true, config: EvalConfig, candidate: keras.Model):
    """What the production model (`destination`'s latest version) scores on the same images.

    Returns:
        its metrics (None when not compared), its version, a note saying why it was not
        compared, and whether its weights equal the candidate's.
    """
    if not destination:
        return None, None, "no export destination given: nothing to compare with", False
    version = latest_version(destination)
    if version is None:
        return None, None, f"no production model at {destination} yet", False
    model, production_labels = load_exported(join(destination, version))
    if production_labels != labels:
        listed = ", ".join(production_labels)
        note = (
            f"the production model (version {version}) has other classes ({listed}): not compared"
        )
        return None, version, note, False
    probabilities, kept = predict_images(model, uris)
    metrics = classification_metrics(y_true[kept], probabilities, labels, config.top_k)
    return metrics, version, "", fingerprint(model) == fingerprint(candidate)


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
