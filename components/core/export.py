"""Export of a blessed model: a new version folder, then an atomic move of `latest`.

Layout of an export destination (local or gs://)::

    DEST/latest                      the current version's name (the pointer)
    DEST/<version>/saved_model.pb    SavedModel: `serving_default` takes encoded image bytes
    DEST/<version>/variables/ ...      (TF Serving / KServe load DEST as a model base path:
                                       versions are integers, the newest is served)
    DEST/<version>/model.keras       the Keras model (uint8 images in, probabilities out)
    DEST/<version>/labels.json       class names in output order
    DEST/<version>/model_card.md     data, backbone, hyper-parameters, metrics, verdict
    DEST/<version>/evaluation.json   the full evaluation
    DEST/<version>/model.tflite      optional, with its parity to the SavedModel in the card

Every file of a version is written before `latest` moves to it, so `latest` never names
a half-written version. On GCS the pointer is replaced with a generation precondition:
of two concurrent exports, one wins and the other fails.
"""

import datetime
import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kftransfer.components.core import layout, storage
from kftransfer.components.core.classifier import as_probabilities
from kftransfer.components.core.config import ExportConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.images import decode_rgb, image_dataset, resize_uint8
from kftransfer.components.core.layout import (
    CARD_FILE,
    EVALUATION_FILE,
    LABELS_FILE,
    LATEST,
    MODEL_FILE,
    TFLITE_FILE,
)
from kftransfer.components.core.model_card import model_card
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.progress import LOGGER


def latest_version(destination: str) -> str | None:
    """The version `DEST/latest` names, or None when nothing was exported yet."""
    try:
        return storage.read_text(storage.join(destination, LATEST)).strip() or None
    except storage.NotFoundError:
        return None


def resolve_model_folder(uri: str) -> str:
    """An export destination (its latest version) or a version folder -> the version folder."""
    version = latest_version(uri)
    return storage.join(uri, version) if version else uri


def load_exported(folder: str) -> tuple[keras.Model, list[str]]:
    """The Keras model and class names of a version folder.

    Raises:
        UserError: the folder lacks `model.keras` or `labels.json`.
    """
    labels_uri = storage.join(folder, LABELS_FILE)
    if not storage.exists(labels_uri):
        raise UserError(f"{folder} has no {LABELS_FILE}: give an export folder or a version folder")
    labels = storage.read_json(labels_uri)
    return load_model(storage.join(folder, MODEL_FILE)), labels


def new_version(destination: str, now: datetime.datetime | None = None) -> str:
    """An integer version name from the UTC time (`YYYYMMDDHHMMSS`), unused in `destination`."""
    now = now or datetime.datetime.now(datetime.UTC)
    version = int(now.strftime("%Y%m%d%H%M%S"))
    while storage.exists(storage.join(destination, str(version), LABELS_FILE)):
        version += 1
    return str(version)


def write_saved_model(model: keras.Model, labels: list[str], path: str) -> None:
    """A SavedModel whose `serving_default` maps encoded image bytes to probabilities and labels.

    Signatures: `serving_default(image_bytes: string[N])` -> `probabilities` `[N, classes]`
    and `label` `[N]`; `serve_images(images: uint8[N, S, S, 3])` -> `probabilities`.
    Decoding and resizing are the training pipeline's own (`images.decode_rgb`,
    `images.resize_uint8`).
    """
    size = model.input_shape[1]
    names = tf.constant(labels)

    def probabilities(images):
        return as_probabilities(model(images, training=False))

    def serve_bytes(image_bytes):
        images = tf.map_fn(
            lambda data: resize_uint8(decode_rgb(data), size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
        )
        probs = probabilities(images)
        return {"probabilities": probs, "label": tf.gather(names, tf.argmax(probs, axis=1))}

    archive = keras.export.ExportArchive()
    archive.track(model)
    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    images_spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")
    archive.add_endpoint("serving_default", serve_bytes, [bytes_spec])
    archive.add_endpoint(
        "serve_images", lambda images: {"probabilities": probabilities(images)}, [images_spec]
    )
    archive.write_out(path, verbose=False)


def tflite_with_parity(saved_model: str, images: np.ndarray) -> tuple[bytes, float]:
    """Converts the `serve_images` signature to TFLite; returns it and the max |Δprobability|."""
    import warnings

    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model, signature_keys=["serve_images"]
    )
    flat = converter.convert()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        runner = tf.lite.Interpreter(model_content=flat).get_signature_runner("serve_images")
    reference = tf.saved_model.load(saved_model).signatures["serve_images"]
    difference = 0.0
    for image in images:
        expected = reference(images=tf.constant(image[None]))["probabilities"].numpy()
        actual = runner(images=image[None])["probabilities"]
        difference = max(difference, float(np.max(np.abs(actual - expected))))
    return flat, difference


def export_model(
    model: keras.Model,
    labels: list[str],
    destination: str,
    card: str,
    evaluation: dict,
    tflite_images: np.ndarray | None = None,
    version: str = "",
) -> str:
    """Writes a new version under `destination`, then points `latest` at it; returns its URI.

    Args:
        model: the fine-tuned Keras model (uint8 images in).
        labels: class names in output order.
        destination: the export folder (local or gs://).
        card: the model card (markdown); a TFLite parity line is appended when converted.
        evaluation: the evaluation summary, saved as `evaluation.json`.
        tflite_images: test images `[N, S, S, 3]` uint8 for a TFLite export and its parity
            check; None for no TFLite.
        version: the version's name; empty for a new one from the clock.
    """
    version = version or new_version(destination)
    with tempfile.TemporaryDirectory(prefix="kft-export-") as tmp:
        write_saved_model(model, labels, tmp)
        model.save(os.path.join(tmp, MODEL_FILE))
        if tflite_images is not None:
            flat, difference = tflite_with_parity(tmp, tflite_images)
            with open(os.path.join(tmp, TFLITE_FILE), "wb") as out:
                out.write(flat)
            card += (
                f"\n## TFLite\n\n`{TFLITE_FILE}`: max |probability difference| vs the SavedModel "
            )
            card += f"on {len(tflite_images)} test images: {difference:.2e}\n"
            evaluation = {**evaluation, "tflite_max_abs_difference": difference}
        texts = {
            LABELS_FILE: json.dumps(labels),
            CARD_FILE: card,
            EVALUATION_FILE: json.dumps(evaluation, indent=1),
        }
        for name, text in texts.items():
            with open(os.path.join(tmp, name), "w") as out:
                out.write(text)
        target = storage.join(destination, version)
        upload_tree(tmp, target)
    move_latest(destination, version)
    LOGGER.info("exported version %s to %s; latest -> %s", version, target, version)
    return target


def sample_test_images(splits_uri: str, size: int, limit: int = 64) -> np.ndarray:
    """Up to `limit` test-split images `[N, size, size, 3]` uint8, for the TFLite parity check."""
    uris = [row.uri for row in layout.read_rows(splits_uri, "test")][:limit]
    batches = [images.numpy() for images, _, _ in image_dataset(uris, [0] * len(uris), size, 32)]
    return np.concatenate(batches) if batches else np.zeros((0, size, size, 3), np.uint8)


def upload_tree(local_folder: str, uri: str) -> None:
    """Copies every file below `local_folder` to the same relative path under `uri`."""
    for folder, _, names in os.walk(local_folder):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, local_folder).replace(os.sep, "/")
            storage.upload_file(path, storage.join(uri, relative))


def move_latest(destination: str, version: str) -> None:
    """Points `DEST/latest` at `version` atomically, failing if another export moved it first."""
    pointer = storage.join(destination, LATEST)
    _, generation = storage.read_versioned(pointer)
    try:
        storage.write_if_generation(pointer, version.encode(), generation)
    except storage.PreconditionFailed as err:
        raise UserError(
            f"{pointer} was moved by another export while this one ran; version {version} "
            "is complete but not latest: re-run, or point latest at it by hand"
        ) from err


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
    version = new_version(export_uri)
    manifest, stats = layout.read_manifest(features_uri), layout.read_stats(splits_uri)
    card = model_card(evaluation, manifest, stats, hyper_parameters, version)
    images = sample_test_images(splits_uri, model.input_shape[1]) if config.tflite else None
    labels = layout.read_labels(splits_uri)
    return export_model(model, labels, export_uri, card, evaluation, images, version)
