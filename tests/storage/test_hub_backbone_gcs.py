"""A KerasHub preset in a bucket as the backbone: extract, fine-tune, export, serve (issue 19)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from devtools.hub_presets import write_tiny_preset
from devtools.imagegen import write_class_folders
from kftransfer.components.core import storage
from kftransfer.components.core.backbones import load_backbone
from kftransfer.components.core.fine_tune_model import set_trainable
from kftransfer.components.core.model_io import load_model
from kftransfer.pipelines.cli import cli
from kftransfer.pipelines.summary import format_summary

pytest.importorskip("keras_hub")

# Serves the export where KerasHub is not installed: the SavedModel needs TensorFlow only.
SERVE = """
import sys
sys.modules["keras_hub"] = None
import tensorflow as tf
serving = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
images = [open(path, "rb").read() for path in sys.argv[2:]]
print(serving(image_bytes=tf.constant(images))["probabilities"].numpy().sum(axis=1).tolist())
"""


def trainable_parameters(preset: str, summary: dict) -> int:
    """The top block and final norm of the tower (--unfreeze top_n_layers=2), and the head."""
    backbone = load_backbone(f"keras_hub:{preset}")
    assert set_trainable(backbone, "top_n_layers=2") == ["layers_1", "tiny_dinov2_layernorm"]
    head = load_model(os.path.join(summary["artifacts"]["train-head"]["head"], "model.keras"))
    weights = backbone.base.trainable_weights + head.trainable_weights
    return int(sum(np.prod(w.shape) for w in weights))


def test_a_tiny_dinov2_preset_in_a_bucket_extracts_fine_tunes_and_exports(gcs_bucket, tmp_path):
    local = write_tiny_preset(str(tmp_path / "preset"))
    for name in os.listdir(local):
        storage.upload_file(os.path.join(local, name), f"{gcs_bucket}/presets/tiny/{name}")
    write_class_folders(str(tmp_path / "data"), {"red": 20, "green": 20, "blue": 20})
    result = CliRunner().invoke(cli, [
        "run", str(tmp_path / "data"), "--pipeline-root", str(tmp_path / "runs"),
        "--backbone", f"keras_hub:{gcs_bucket}/presets/tiny", "--head-normalize",
        "--val-fraction", "0.25", "--test-fraction", "0.25", "--min-images-per-class", "5",
        "--head-epochs", "20", "--fine-tune-epochs", "2", "--fine-tune-batch-size", "16",
        "--unfreeze", "top_n_layers=2", "--tflite", "int8", "--export", str(tmp_path / "models"),
        "--json",
    ], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    features = summary["artifacts"]["extract-bottlenecks"]["features"]
    manifest = json.loads(storage.read_text(os.path.join(features, "manifest.json")))
    assert manifest["backbone"] == f"keras_hub:{gcs_bucket}/presets/tiny"
    assert manifest["dim"] == 32 and manifest["image_size"] == 28
    assert summary["head"]["test_accuracy"] >= 0.9  # colour separates even random towers
    stage = json.loads(
        (Path(summary["artifacts"]["fine-tune"]["model"]) / "summary.json").read_text()
    )
    assert stage["trainable_parameters"] == trainable_parameters(local, summary)
    assert summary["blessed"] is True
    exported = summary["exported"]
    tflite = json.loads(storage.read_text(os.path.join(exported, "evaluation.json")))["tflite"]
    assert tflite["mode"] == "int8" and tflite["drop_points"] <= 10
    assert summary["tflite"]["accuracy"] == tflite["accuracy"]
    printed = [line for line in format_summary(summary).splitlines() if line.startswith("tflite:")]
    assert printed == [
        f"tflite:   int8, {tflite['bytes'] / 2**20:.1f} MiB, test accuracy "
        f"{tflite['accuracy']:.4f} ({tflite['drop_points']:.2f} points lost against the "
        f"SavedModel's {tflite['saved_model_accuracy']:.4f})"
    ]
    assert os.path.isfile(os.path.join(exported, "model.tflite"))
    judged = summary["artifacts"]["evaluate-model"]["tflite_model"]  # copied, not reconverted
    assert Path(judged, "model.tflite").read_bytes() == Path(exported, "model.tflite").read_bytes()
    report = Path(summary["report"]).read_text()
    assert f"<td>accuracy of model.tflite</td><td>{tflite['accuracy']:.4f}</td>" in report
    images = sorted(str(p) for p in (tmp_path / "data" / "red").iterdir())[:3]
    served = subprocess.run(
        [sys.executable, "-c", SERVE, exported, *images], capture_output=True, text=True
    )
    assert served.returncode == 0, served.stderr[-2000:]
    assert [round(s, 4) for s in json.loads(served.stdout.strip().splitlines()[-1])] == [1.0] * 3
