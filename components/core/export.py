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
    DEST/<version>/model.tflite      optional (--tflite MODE): the evaluation step's,
                                       judged there on the test split

How a version is named, published and pointed at, safely under concurrent and killed
exports, is `versions.py`.
"""

import json
import os
import tempfile
from collections.abc import Callable

import keras

from kftransfer.components.core import layout, storage, versions
from kftransfer.components.core.calibration import TemperatureScaling
from kftransfer.components.core.classifier import (
    is_binary,
    num_classes,
    with_flip_averaging,
)
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.layout import (
    CARD_FILE,
    EVALUATION_FILE,
    LABELS_FILE,
    MODEL_FILE,
    SERVING_FILE,
    TFLITE_FILE,
    TFLITE_REPORT_FILE,
    UNKNOWN,
)
from kftransfer.components.core.model_card import model_card, tflite_figures
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.serving import write_saved_model


def load_exported(folder: str) -> tuple[keras.Model, list[str]]:
    """The Keras model and class names of a version folder.

    Raises:
        UserError: the folder lacks `model.keras` or `labels.json`.
    """
    labels_uri, model_uri = storage.join(folder, LABELS_FILE), storage.join(folder, MODEL_FILE)
    for needed in (labels_uri, model_uri):
        if not storage.exists(needed):
            raise UserError(
                f"{folder} has no {storage.basename(needed)}: give an export folder or a "
                "version folder"
            )
    return load_labelled_model(model_uri, labels_uri)


def exported_evaluation(folder: str) -> dict:
    """The `evaluation.json` of a version folder ({} for a version without one).

    Raises:
        UserError: it is not a JSON object (damaged after the export, which writes it whole).
    """
    uri = storage.join(folder, EVALUATION_FILE)
    try:
        evaluation = storage.read_json(uri)
    except storage.NotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        evaluation = err
    if not isinstance(evaluation, dict):
        raise UserError(
            f"{uri} is not a JSON object ({type(evaluation).__name__}): restore it, or delete "
            f"the version folder {folder} to roll production back to the version before it"
        )
    return evaluation


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
    """`model` with temperature scaling appended: calibrated probabilities out.

    At T = 1 a model is kept as is, but for a sigmoid: its one column `p(class 1)` becomes
    two, so every exported model answers `[N, classes]` in the order of `labels.json`.
    """
    if temperature == 1.0 and not is_binary(model):
        return model
    outputs = TemperatureScaling(temperature, name="temperature_scaling")(model.outputs[0])
    return keras.Model(model.inputs, outputs, name=model.name)


def serving_model(model: keras.Model, serving: dict) -> keras.Model:
    """The fine-tuned model as exported: flip averaging if judged with it, then temperature."""
    if serving["test_time_flip"]:
        model = with_flip_averaging(model)
    return with_temperature(model, serving["temperature"])


def export_model(
    model: keras.Model,
    labels: list[str],
    destination: str,
    card: Callable[[str], str] | str,
    evaluation: dict,
    tflite: bytes | None = None,
    serving: dict | None = None,
) -> str:
    """Publishes a new version of `destination`, then points `latest` at it; returns its URI.

    Everything is written to a local folder first; then the version is claimed (its name
    is unique however many exports run at once) and published whole (`versions.publish`).

    Args:
        model: the fine-tuned Keras model (uint8 images in).
        labels: class names in output order.
        destination: the export folder (local or gs://).
        card: the model card (markdown), or a function of the version that renders it.
        evaluation: the evaluation summary, saved as `evaluation.json` (its `tflite`
            report describes `tflite`).
        tflite: `model.tflite`, converted and judged by the evaluation step; None for none.
        serving: `serving.json` (`serving_settings`): the temperature already applied to
            `model` and the `min_confidence` below which the signature answers "unknown".
    """
    serving = serving or serving_settings({})
    with tempfile.TemporaryDirectory(prefix="kft-export-") as tmp:
        write_saved_model(model, labels, tmp, serving["min_confidence"])
        model.save(os.path.join(tmp, MODEL_FILE))
        if tflite is not None:
            with open(os.path.join(tmp, TFLITE_FILE), "wb") as out:
                out.write(tflite)
        versions.remove_leftovers(destination)
        version = versions.claim_version(destination)
        texts = {
            LABELS_FILE: json.dumps(labels),
            CARD_FILE: card(version) if callable(card) else card,
            EVALUATION_FILE: json.dumps(evaluation, indent=1),
            SERVING_FILE: json.dumps(serving, indent=1),
        }
        for name, text in texts.items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as out:
                out.write(text)
        target = versions.publish(tmp, destination, version)
    versions.move_latest(destination, version)
    LOGGER.info("exported version %s to %s", version, target)
    return target


def export_run(
    splits_uri: str,
    features_uri: str,
    head_stage: str,
    model_stage: str,
    evaluation_uri: str,
    tflite_uri: str,
    export_uri: str,
) -> dict:
    """Exports a run's fine-tuned model as a new version of `export_uri`.

    Returns:
        what the export step records (`exported_summary`): the version, its URI and, when
        converted, the TFLite figures.

    The model card is written from the evaluation, the features manifest, the split's
    statistics and both stages' hyper-parameters; `model.tflite` is the evaluation step's
    (in `tflite_uri`, the folder `evaluate_tflite.judge_tflite` wrote), when it made one.
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
    model = serving_model(model, serving)
    tflite = judged_tflite(tflite_uri, evaluation) if evaluation.get("tflite") else None
    labels = layout.read_labels(splits_uri)
    target = export_model(model, labels, export_uri, card, evaluation, tflite, serving)
    return exported_summary(target, export_uri, evaluation)


def judged_tflite(tflite_uri: str, evaluation: dict) -> bytes:
    """The evaluation step's `model.tflite`, checked to be the one its evaluation describes.

    Raises:
        UserError: the folder's report is not the evaluation's (the two inputs come from
            different runs), or the flatbuffer's size is not the one judged.
    """
    report = storage.read_json(storage.join(tflite_uri, TFLITE_REPORT_FILE))
    flat = storage.read_bytes(storage.join(tflite_uri, TFLITE_FILE))
    if report != evaluation["tflite"] or len(flat) != report["bytes"]:
        raise UserError(
            f"{tflite_uri} does not hold the TFLite model the evaluation judged: give the "
            "tflite_model and evaluation outputs of the same evaluate_model step"
        )
    return flat


def exported_summary(target: str, export_uri: str, evaluation: dict) -> dict:
    """What an export step records: the version, its URI and, when converted, the TFLite figures.

    Args:
        target: the published version's URI.
        export_uri: the export destination.
        evaluation: the evaluation published with it (its `tflite` report, if any).
    """
    report = evaluation.get("tflite")
    figures = {f"tflite_{k}": v for k, v in tflite_figures(report).items()} if report else {}
    return {"version": storage.basename(target), "uri": target, "export_uri": export_uri, **figures}


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
