"""Export of a blessed model: a new version, published whole, then `latest` moves to it.

Layout of an export destination (local or gs://)::

    DEST/latest                      the current version's name (the pointer)
    DEST/<version>/saved_model.pb    SavedModel: `serving_default` takes encoded image bytes
    DEST/<version>/variables/ ...      (TF Serving / KServe load DEST as a model base path:
                                       versions are integers, the newest is served)
    DEST/<version>/model.keras       the Keras model (uint8 images in, probabilities out)
    DEST/<version>/labels.json       class names in output order
    DEST/<version>/model_card.md     data, backbone, hyper-parameters, metrics, verdict
    DEST/<version>/evaluation.json   the full evaluation
    DEST/<version>/serving.json      temperature and min_confidence (below it: "unknown")
    DEST/<version>/model.tflite      optional (--tflite MODE), judged on the test split

How a version is named, published and pointed at, safely under concurrent and killed
exports, is `versions.py`.
"""

import json
import os
import tempfile
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from kftransfer.components.core import layout, storage, versions
from kftransfer.components.core.calibration import TemperatureScaling
from kftransfer.components.core.classifier import as_probabilities, num_classes, with_flip_averaging
from kftransfer.components.core.config import ExportConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.images import decode_resized, image_dataset
from kftransfer.components.core.layout import (
    CARD_FILE,
    EVALUATION_FILE,
    LABELS_FILE,
    MODEL_FILE,
    SERVING_FILE,
    TFLITE_FILE,
    UNKNOWN,
)
from kftransfer.components.core.model_card import model_card
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.tflite import (
    TFLiteRequest,
    artifact_metadata,
    card_section,
    convert_and_check,
)

TFLITE_TEST_IMAGES = 2000  # test images the TFLite model is judged on (memory: N x S x S x 3)
REPRESENTATIVE_IMAGES = 200  # train images calibrating int8 ranges


def load_exported(folder: str) -> tuple[keras.Model, list[str]]:
    """The Keras model and class names of a version folder.

    Raises:
        UserError: the folder lacks `model.keras` or `labels.json`.
    """
    labels_uri = storage.join(folder, LABELS_FILE)
    if not storage.exists(labels_uri):
        raise UserError(f"{folder} has no {LABELS_FILE}: give an export folder or a version folder")
    return load_labelled_model(storage.join(folder, MODEL_FILE), labels_uri)


def load_labelled_model(model_uri: str, labels_uri: str) -> tuple[keras.Model, list[str]]:
    """A model and the class names of its outputs, checked against each other.

    Raises:
        UserError: the labels file is not a JSON list of names, or names another number of
            classes than the model has outputs; or the model does not load.
    """
    try:
        labels = json.loads(storage.read_text(labels_uri))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(
            f"{labels_uri} is not JSON ({type(err).__name__}): it must be a list of class "
            'names, e.g. ["cat", "dog"]'
        ) from err
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise UserError(f'{labels_uri} must be a JSON list of class names, e.g. ["cat", "dog"]')
    model = load_model(model_uri)
    if len(labels) != num_classes(model):
        raise UserError(
            f"{labels_uri} names {len(labels)} classes but {model_uri} tells "
            f"{num_classes(model)} apart: use the labels.json exported with the model"
        )
    return model, labels


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """`model` with temperature scaling appended: calibrated probabilities out (T = 1: as is)."""
    if temperature == 1.0:
        return model
    outputs = TemperatureScaling(temperature, name="temperature_scaling")(model.outputs[0])
    return keras.Model(model.inputs, outputs, name=model.name)


def write_saved_model(
    model: keras.Model, labels: list[str], path: str, min_confidence: float = 0.0
) -> None:
    """A SavedModel whose `serving_default` maps encoded image bytes to probabilities and labels.

    Signatures: `serving_default(image_bytes: string[N])` -> `probabilities` `[N, classes]`
    and `label` `[N]` (`UNKNOWN` where the top probability is below `min_confidence`);
    `serve_images(images: uint8[N, S, S, 3])` -> `probabilities`. Decoding and resizing
    are the training pipeline's own (`images.decode_resized`).
    """
    size = model.input_shape[1]
    names = tf.constant(labels)

    def probabilities(images):
        return as_probabilities(model(images, training=False))

    def serve_bytes(image_bytes):
        images = tf.map_fn(
            lambda data: decode_resized(data, size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
        )
        probs = probabilities(images)
        label = tf.gather(names, tf.argmax(probs, axis=1))
        sure = tf.reduce_max(probs, axis=1) >= min_confidence
        return {"probabilities": probs, "label": tf.where(sure, label, UNKNOWN)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    images_spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")
    archive.add_endpoint("serving_default", serve_bytes, [bytes_spec])
    archive.add_endpoint(
        "serve_images", lambda images: {"probabilities": probabilities(images)}, [images_spec]
    )
    archive.write_out(path, verbose=False)


def export_model(
    model: keras.Model,
    labels: list[str],
    destination: str,
    card: Callable[[str], str] | str,
    evaluation: dict,
    tflite_request: TFLiteRequest | None = None,
    serving: dict | None = None,
) -> str:
    """Publishes a new version of `destination`, then points `latest` at it; returns its URI.

    Everything is written to a local folder first (a TFLite model that loses too much
    stops the export here, before a version is claimed); then the version is claimed (its
    name is unique however many exports run at once) and published whole
    (`versions.publish`).

    Args:
        model: the fine-tuned Keras model (uint8 images in).
        labels: class names in output order.
        destination: the export folder (local or gs://).
        card: the model card (markdown), or a function of the version that renders it; the
            TFLite section is appended when converted.
        evaluation: the evaluation summary, saved as `evaluation.json`.
        tflite_request: what TFLite model to convert and how to judge it; None for none.
        serving: `serving.json` (`serving_settings`): the temperature already applied to
            `model` and the `min_confidence` below which the signature answers "unknown".

    Raises:
        UserError: the TFLite model loses more than allowed (`tflite.convert_and_check`).
    """
    serving = serving or serving_settings({})
    with tempfile.TemporaryDirectory(prefix="kft-export-") as tmp:
        write_saved_model(model, labels, tmp, serving["min_confidence"])
        model.save(os.path.join(tmp, MODEL_FILE))
        extra_card = ""
        if tflite_request is not None:
            flat, report = convert_and_check(tmp, tflite_request)
            with open(os.path.join(tmp, TFLITE_FILE), "wb") as out:
                out.write(flat)
            extra_card = card_section(report)
            evaluation = {**evaluation, "tflite": report}
        versions.remove_leftovers(destination)
        version = versions.claim_version(destination)
        texts = {
            LABELS_FILE: json.dumps(labels),
            CARD_FILE: (card(version) if callable(card) else card) + extra_card,
            EVALUATION_FILE: json.dumps(evaluation, indent=1),
            SERVING_FILE: json.dumps(serving, indent=1),
        }
        for name, text in texts.items():
            with open(os.path.join(tmp, name), "w") as out:
                out.write(text)
        target = versions.publish(tmp, destination, version)
    versions.move_latest(destination, version)
    LOGGER.info("exported version %s to %s", version, target)
    return target


def spread_sample(rows: list, limit: int) -> list:
    """`limit` of `rows` at evenly spaced positions (all of them when there are fewer).

    Deterministic, and proportional to any grouping of `rows` (the split's CSVs list
    each class's rows together): the i-th pick is row `i * len(rows) // limit`.
    """
    if len(rows) <= limit:
        return list(rows)
    return [rows[i * len(rows) // limit] for i in range(limit)]


def split_images(
    splits_uri: str, split: str, size: int, labels: list[str], limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to `limit` images of a split `[N, size, size, 3]` uint8 and their class ids.

    The images are spread evenly over the split's rows (`spread_sample`), so every class
    is in them in its proportion: the rows are grouped by class, and their first `limit`
    would be the first classes only.
    """
    rows = spread_sample(layout.read_rows(splits_uri, split), limit)
    ids = [labels.index(row.label) for row in rows]
    images, kept = [], []
    for batch, _, index in image_dataset([r.uri for r in rows], ids, size, 32):
        images.append(batch.numpy())
        kept.append(index.numpy())
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0,), np.int64)
    return np.concatenate(images), np.asarray(ids)[np.concatenate(kept)]


def tflite_request(splits_uri: str, size: int, config: ExportConfig) -> TFLiteRequest | None:
    """The TFLite conversion `config` asks for, with its test and calibration images."""
    if config.tflite == "none":
        return None
    labels = layout.read_labels(splits_uri)
    test_images, test_labels = split_images(splits_uri, "test", size, labels, TFLITE_TEST_IMAGES)
    representative, _ = split_images(splits_uri, "train", size, labels, REPRESENTATIVE_IMAGES)
    return TFLiteRequest(
        config.tflite, test_images, test_labels, representative, config.max_tflite_drop
    )


def export_run(
    splits_uri: str,
    features_uri: str,
    head_stage: str,
    model_stage: str,
    evaluation_uri: str,
    export_uri: str,
    config: ExportConfig,
) -> str:
    """Exports a run's fine-tuned model as a new version of `export_uri`; returns its URI.

    The model card is written from the evaluation, the features manifest, the split's
    statistics and both stages' hyper-parameters.
    """
    evaluation = storage.read_json(evaluation_uri)
    model = load_model(layout.stage_model(model_stage))
    hyper_parameters = {
        "head": layout.read_stage_config(head_stage),
        "fine-tuning": layout.read_stage_config(model_stage),
    }
    manifest, stats = layout.read_manifest(features_uri), layout.read_stats(splits_uri)

    def card(version: str) -> str:
        return model_card(evaluation, manifest, stats, hyper_parameters, version)

    serving = serving_settings(evaluation)
    if serving["test_time_flip"]:
        model = with_flip_averaging(model)
    model = with_temperature(model, serving["temperature"])
    request = tflite_request(splits_uri, model.input_shape[1], config)
    labels = layout.read_labels(splits_uri)
    return export_model(model, labels, export_uri, card, evaluation, request, serving)


def exported_summary(target: str, export_uri: str) -> dict:
    """What an export step records: the version, its URI and, when converted, the TFLite figures."""
    report = storage.read_json(f"{target}/{EVALUATION_FILE}").get("tflite")
    summary = {"version": storage.basename(target), "uri": target, "export_uri": export_uri}
    return {**summary, **(artifact_metadata(report) if report else {})}


def serving_settings(evaluation: dict) -> dict:
    """What the exported model serves, from the evaluation's calibration of the fine-tuned model.

    `temperature` (applied inside the exported model), `min_confidence` (the signature and
    `predict` answer `unknown_label` below it; 0 = never), `unknown_label`, and
    `test_time_flip` (the exported model averages over the image and its mirror, as the
    evaluated one did).
    """
    calibrated = evaluation.get("calibration", {}).get("fine_tuned", {})
    return {
        "temperature": calibrated.get("temperature", 1.0),
        "min_confidence": calibrated.get("min_confidence", 0.0),
        "unknown_label": UNKNOWN,
        "test_time_flip": bool(evaluation.get("test_time_flip", False)),
    }
