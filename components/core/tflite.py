"""TFLite conversion: float or quantized, measured on the test split, gated on what it loses.

Quantization can silently lose accuracy (tensorflow/tensorflow#44289, #60903), so every
converted model is run on the test images through the TFLite interpreter and compared
with the SavedModel it came from, on the same images; a drop over `--max-tflite-drop`
points is a failing line of the verdict (`gate_reason`), so nothing is exported.

Modes (`EvalConfig.tflite`):
    float    no quantization
    fp16     weights stored as float16 (half the size; computes in float32 on CPUs)
    dynamic  weights int8, activations quantized on the fly
    int8     weights and activations int8, ranges calibrated on train images
             (`representative`); ops without an int8 kernel stay float
"""

import warnings
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kftransfer.components.core.config import TFLITE_MODES as MODES
from kftransfer.components.core.errors import UserError

SIGNATURE = "serve_images"  # uint8 images in, probabilities out


class ConversionFailed(Exception):
    """The TFLite converter refused the model; the message is its first line."""


@dataclass
class TFLiteRequest:
    """What to convert and how to judge it.

    Attributes:
        mode: one of MODES but "none".
        test_images: `[N, S, S, 3]` uint8 test images, and `test_labels` their class ids.
        representative: `[M, S, S, 3]` uint8 train images calibrating int8 ranges.
    """

    mode: str
    test_images: np.ndarray
    test_labels: np.ndarray
    representative: np.ndarray


def convert(saved_model: str, mode: str, representative: np.ndarray | None = None) -> bytes:
    """The SavedModel's `serve_images` signature as a TFLite flatbuffer in `mode`."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[SIGNATURE])
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in representative)
    elif mode != "float":
        raise UserError(f"--tflite {mode!r}: use one of {', '.join(MODES)}")
    try:
        return converter.convert()
    except Exception as err:  # ConverterError, or a quantizer's RuntimeError or ValueError
        lines = str(err).strip().splitlines() or [""]
        raise ConversionFailed(f"{type(err).__name__}: {lines[0][:300]}") from err


def tflite_probabilities(flat: bytes, images: np.ndarray) -> np.ndarray:
    """Probabilities `[N, classes]` of a flatbuffer's `serve_images`, one image at a time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        runner = tf.lite.Interpreter(model_content=flat).get_signature_runner(SIGNATURE)
    return np.concatenate([runner(images=image[None])["probabilities"] for image in images])


def saved_model_probabilities(saved_model: str, images: np.ndarray) -> np.ndarray:
    """Probabilities `[N, classes]` of the SavedModel's `serve_images`, in batches of 32."""
    signature = tf.saved_model.load(saved_model).signatures[SIGNATURE]
    batches = [images[i : i + 32] for i in range(0, len(images), 32)]
    return np.concatenate(
        [signature(images=tf.constant(b))["probabilities"].numpy() for b in batches]
    )


def convert_and_measure(saved_model: str, request: TFLiteRequest) -> tuple[bytes, dict]:
    """Converts, and measures the flatbuffer and the SavedModel on the same test images.

    Returns:
        the flatbuffer and its report: mode, size, test images, both accuracies, the drop
        in points, and the max |probability difference| against the SavedModel.
    """
    flat = convert(saved_model, request.mode, request.representative)
    ours = tflite_probabilities(flat, request.test_images)
    reference = saved_model_probabilities(saved_model, request.test_images)
    labels = request.test_labels
    report = {
        "mode": request.mode,
        "bytes": len(flat),
        "test_images": len(labels),
        **accuracy_drop(ours, reference, labels),
        "max_abs_difference": float(np.max(np.abs(ours - reference))) if len(labels) else 0.0,
    }
    return flat, report


def accuracy_drop(ours: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    """Both models' accuracies and the drop in points, from their counts of right answers.

    In one division, so a drop of exactly `--max-tflite-drop` is not above it: from the
    accuracies, 100 * (0.9 - 0.89) is 1.0000000000000009, which failed a limit of 1.
    """
    images = max(len(labels), 1)
    right = int(np.sum(ours.argmax(axis=1) == labels))
    reference_right = int(np.sum(reference.argmax(axis=1) == labels))
    return {
        "accuracy": right / images,
        "saved_model_accuracy": reference_right / images,
        "drop_points": 100 * (reference_right - right) / images,
    }


def gate_reason(report: dict, max_drop: float) -> str:
    """The verdict's line on the TFLite model: `PASS: ...`, or `FAIL: ...` with what to try."""
    if "error" in report:  # not converted: `convert_and_measure` raised ConversionFailed
        return (
            f"FAIL: TFLite ({report['mode']}) conversion failed: {report['error']} (try "
            "--tflite dynamic, fp16 or float, or none)"
        )
    said = (
        f"TFLite ({report['mode']}) test accuracy {report['accuracy']:.4f}, "
        f"{report['drop_points']:.2f} points below the model's "
        f"{report['saved_model_accuracy']:.4f} on the same {report['test_images']} images"
    )
    if report["drop_points"] <= max_drop:
        return f"PASS: {said}, within --max-tflite-drop {max_drop:g}"
    return (
        f"FAIL: {said}, more than --max-tflite-drop {max_drop:g} "
        "(try --tflite dynamic, fp16 or float)"
    )
