"""Evaluation on the held-out test split: head-only vs fine-tuned vs the production model."""

from dataclasses import asdict, dataclass

import keras
import numpy as np

from kftransfer.components.core import shards
from kftransfer.components.core.backbones import fingerprint
from kftransfer.components.core.blessing import Verdict, bless
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.export import latest_version, load_exported
from kftransfer.components.core.heads import to_probabilities
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.metrics import classification_metrics
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.split import read_labels, read_rows
from kftransfer.components.core.storage import join


@dataclass
class Evaluation:
    """Metrics of every model on the test split, the verdict, and the worst mistakes."""

    labels: list[str]
    head: dict
    fine_tuned: dict
    production: dict | None
    production_version: str | None
    verdict: Verdict
    misclassified: list[dict]

    def to_json(self) -> dict:
        """A JSON-able dict of everything."""
        return asdict(self)


def predict_images(
    model: keras.Model, uris: list[str], batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities `[M, classes]` of the images that decode, and their indices `[M]`."""
    dataset = image_dataset(uris, [0] * len(uris), model.input_shape[1], batch_size)
    probabilities, indices = [], []
    for images, _, index in dataset:
        probabilities.append(to_probabilities(model.predict_on_batch(images)))
        indices.append(index.numpy())
    if not indices:
        return np.zeros((0, model.output_shape[-1] if model.output_shape[-1] > 1 else 2)), np.zeros(
            0, int
        )
    return np.concatenate(probabilities), np.concatenate(indices)


def evaluate(
    splits_uri: str,
    features_uri: str,
    head_uri: str,
    model_uri: str,
    destination: str,
    config: EvalConfig,
) -> Evaluation:
    """Evaluates both models on the test split, compares with production, and blesses or not.

    The head-only model is evaluated on the cached test features (the same numbers as
    backbone + head on the test images), the fine-tuned model on the test images, the
    production model (`destination`'s latest version) on the same images.
    """
    labels = read_labels(splits_uri)
    features, y_features = shards.load_split(features_uri, "test")
    head_probabilities = to_probabilities(
        load_model(head_uri).predict(features.astype(np.float32), verbose=0)
    )
    head = classification_metrics(y_features, head_probabilities, labels, config.top_k)
    rows = read_rows(splits_uri, "test")
    y_true = np.array([labels.index(row.label) for row in rows])
    uris = [row.uri for row in rows]
    candidate = load_model(model_uri)
    probabilities, kept = predict_images(candidate, uris)
    fine_tuned = classification_metrics(y_true[kept], probabilities, labels, config.top_k)
    production, version, note, same = _production(
        destination, labels, uris, y_true, config, candidate
    )
    verdict = bless(fine_tuned, production, config, note, same_weights=same)
    LOGGER.info("test accuracy: head-only %.4f, fine-tuned %.4f%s; blessed: %s",
                head["accuracy"], fine_tuned["accuracy"],
                f", production {production['accuracy']:.4f}" if production else "",
                verdict.blessed)  # fmt: skip
    for reason in verdict.reasons:
        LOGGER.info("  %s", reason)
    mistakes = _misclassified(
        uris, y_true, probabilities, kept, labels, config.misclassified_examples
    )
    return Evaluation(labels, head, fine_tuned, production, version, verdict, mistakes)


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
        {"uri": uris[kept[i]], "true": labels[y_true[kept[i]]], "predicted": labels[predicted[i]],
         "probability": float(probabilities[i, predicted[i]])}
        for i in wrong
    ]  # fmt: skip
