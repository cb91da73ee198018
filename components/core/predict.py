"""Predictions of an exported model on image files: top-k labels with probabilities."""

import os
from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np

from kftransfer.components.core import storage
from kftransfer.components.core.classifier import predict_images
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.export import load_exported, load_labelled_model
from kftransfer.components.core.layout import LABELS_FILE, SERVING_FILE, UNKNOWN
from kftransfer.components.core.validation import EXTENSION_FORMATS, check_image
from kftransfer.components.core.versions import resolve_model_folder


@dataclass
class Prediction:
    """The answer for one image and its top-k `(label, probability)`, or why there are none.

    `label` is the most probable class, or `unknown` when its probability is below the
    minimum confidence.
    """

    uri: str
    top: list[tuple[str, float]]
    error: str = ""
    label: str = ""

    def to_json(self) -> dict:
        """`{"image", "label", "predictions": [{"label", "probability"}, ...]}` (or `"error"`)."""
        if self.error:
            return {"image": self.uri, "error": self.error}
        predictions = [{"label": label, "probability": round(p, 6)} for label, p in self.top]
        return {"image": self.uri, "label": self.label, "predictions": predictions}


def load_predictor(uri: str) -> tuple[keras.Model, list[str], float]:
    """The model, labels and minimum confidence of an export folder, version or `.keras` file.

    An export folder means its latest version; a `.keras` file needs `labels.json` beside
    it. Local or gs://. The minimum confidence is the version's `serving.json` one (0 for
    a `.keras` file or a version exported without it).

    Raises:
        UserError: no model or no labels there.
    """
    if uri.endswith(".keras"):
        labels_uri = storage.join(storage.parent(uri), LABELS_FILE)
        if not storage.exists(labels_uri):
            raise UserError(f"no {LABELS_FILE} beside {uri}: the class names are needed")
        return (*load_labelled_model(uri, labels_uri), 0.0)
    folder = resolve_model_folder(uri.rstrip("/"))
    serving_uri = storage.join(folder, SERVING_FILE)
    serving = storage.read_json(serving_uri) if storage.exists(serving_uri) else {}
    return (*load_exported(folder), float(serving.get("min_confidence", 0.0)))


def find_images(paths: list[str]) -> list[str]:
    """Files as given; folders (local or gs://) expanded to the image files below them."""
    found = []
    for path in paths:
        if storage.is_folder(path):
            found += [
                info.uri
                for info in storage.list_files(path)
                if os.path.splitext(info.uri)[1].lower() in EXTENSION_FORMATS
            ]
        else:
            found.append(path)
    return found


def predict(
    model: keras.Model,
    labels: list[str],
    uris: list[str],
    top_k: int = 3,
    batch_size: int = 32,
    min_confidence: float = 0.0,
) -> Iterator[Prediction]:
    """Predicts every image in batches; an unreadable one yields its error, the rest go on.

    An image whose top probability is below `min_confidence` is answered `unknown`.
    """
    probabilities, kept = predict_images(model, uris, batch_size)
    by_index = dict(zip(kept.tolist(), probabilities, strict=True))
    for index, uri in enumerate(uris):
        if index not in by_index:
            check = check_image(uri, min_side=1, max_pixels=10**12)
            reason = f"{check.problem}: {check.detail}" if check.problem else "could not be decoded"
            yield Prediction(uri, [], reason)
            continue
        order = np.argsort(-by_index[index], kind="stable")[:top_k]
        top = [(labels[i], float(by_index[index][i])) for i in order]
        yield Prediction(uri, top, label=top[0][0] if top[0][1] >= min_confidence else UNKNOWN)
