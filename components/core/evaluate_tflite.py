"""The TFLite model of a run: converted and judged in the evaluation step, copied by the export.

Judging it where the other models are judged puts its test accuracy in the report, the
KFP metrics and the verdict: a quantized model that loses more than `--max-tflite-drop`
points is a failing line of the verdict, like any other gate, and nothing is exported.
The export step copies the very flatbuffer judged here (`tflite.json` and `model.tflite`
in the step's `tflite_model` folder), so the file served is the file measured.
"""

import dataclasses
import tempfile

import numpy as np

from kftransfer.components.core import layout, storage
from kftransfer.components.core.blessing import Verdict
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.evaluation_result import Evaluation
from kftransfer.components.core.export import serving_model, serving_settings
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.layout import TFLITE_FILE, TFLITE_REPORT_FILE
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.serving import write_saved_model
from kftransfer.components.core.tflite import (
    ConversionFailed,
    TFLiteRequest,
    convert_and_measure,
    gate_reason,
)

TFLITE_TEST_IMAGES = 2000  # test images the TFLite model is judged on (memory: N x S x S x 3)
REPRESENTATIVE_IMAGES = 200  # train images calibrating int8 ranges


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
    sha256s = [r.sha256 for r in rows]  # the images the split (and the Keras model) judged
    for batch, _, index in image_dataset([r.uri for r in rows], ids, size, 32, sha256s=sha256s):
        images.append(batch.numpy())
        kept.append(index.numpy())
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0,), np.int64)
    return np.concatenate(images), np.asarray(ids)[np.concatenate(kept)]


def tflite_request(splits_uri: str, size: int, mode: str) -> TFLiteRequest:
    """A conversion in `mode`, with its test images and int8 calibration images."""
    labels = layout.read_labels(splits_uri)
    test_images, test_labels = split_images(splits_uri, "test", size, labels, TFLITE_TEST_IMAGES)
    representative, _ = split_images(splits_uri, "train", size, labels, REPRESENTATIVE_IMAGES)
    return TFLiteRequest(mode, test_images, test_labels, representative)


def judge_tflite(
    evaluation: Evaluation, splits_uri: str, model_stage: str, config: EvalConfig, folder: str
) -> Evaluation:
    """Converts the model as it will be served, judges it on the test split, adds the verdict.

    The model converted is the one the export writes: the fine-tuned model with the
    evaluation's temperature (and flip averaging, with `--test-time-flip`).

    Args:
        evaluation: `evaluate.evaluate_stages`' result.
        splits_uri: the split folder (test images; train images calibrate int8).
        model_stage: the fine-tuned model's stage folder.
        config: `tflite` (the mode; "none" converts nothing) and `max_tflite_drop`.
        folder: where `tflite.json` (the report, or `{"mode": "none"}`) and, when
            converted, `model.tflite` go; always written, so the artifact exists.

    Returns:
        `evaluation` with the report as `tflite` and the gate's line last in the verdict.
    """
    if config.tflite == "none":
        storage.write_json(storage.join(folder, TFLITE_REPORT_FILE), {"mode": "none"})
        return evaluation
    settings = serving_settings(evaluation.to_json())  # what the export will read back
    model = serving_model(load_model(layout.stage_model(model_stage)), settings)
    request = tflite_request(splits_uri, model.input_shape[1], config.tflite)
    with tempfile.TemporaryDirectory(prefix="kft-tflite-") as saved_model:
        write_saved_model(model, evaluation.labels, saved_model)
        try:
            flat, report = convert_and_measure(saved_model, request)
        except ConversionFailed as err:  # a failing line of the verdict, not a failed step
            flat, report = None, {"mode": config.tflite, "error": str(err)}
    if flat is not None:
        storage.write_bytes(storage.join(folder, TFLITE_FILE), flat)
    storage.write_json(storage.join(folder, TFLITE_REPORT_FILE), report)
    reason = gate_reason(report, config.max_tflite_drop)
    verdict = Verdict.of([*evaluation.verdict.reasons, reason])
    changed = verdict.blessed != evaluation.verdict.blessed
    LOGGER.info("  %s%s", reason, "; not blessed" if changed else "")
    return dataclasses.replace(evaluation, tflite=report, verdict=verdict)
