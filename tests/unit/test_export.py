"""Export: the bytes signature matches the Keras model, and `latest` only ever moves whole."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kftransfer.components.core import export, storage
from kftransfer.components.core.classifier import predict_images
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.layout import read_labels, read_rows
from kftransfer.components.core.model_io import load_model

EVALUATION = {"verdict": {"blessed": True, "reasons": []}}


@pytest.fixture(scope="module")
def model(tuned):
    return load_model(tuned["model_file"])


def test_bytes_signature_gives_the_keras_models_probabilities(tuned, model, tmp_path):
    labels = read_labels(tuned["split"])
    target = export.export_model(model, labels, str(tmp_path / "models"), "# card", EVALUATION)
    version = os.path.basename(target)
    assert export.latest_version(str(tmp_path / "models")) == version and version.isdigit()
    assert sorted(os.listdir(target)) == [
        "evaluation.json", "fingerprint.pb", "labels.json", "model.keras", "model_card.md",
        "saved_model.pb", "variables",
    ]  # fmt: skip
    uris = [row.uri for row in read_rows(tuned["split"], "test")]
    serving = tf.saved_model.load(target).signatures["serving_default"]
    out = serving(image_bytes=tf.constant([storage.read_bytes(u) for u in uris]))
    expected, kept = predict_images(model, uris)
    assert kept.tolist() == list(range(len(uris)))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert [s.decode() for s in out["label"].numpy()] == [labels[i] for i in expected.argmax(1)]
    reloaded, reloaded_labels = export.load_exported(target)
    assert reloaded_labels == labels
    np.testing.assert_allclose(predict_images(reloaded, uris)[0], expected, atol=1e-6)


def test_tflite_export_reports_its_parity(tuned, model, tmp_path):
    images = export.sample_test_images(tuned["split"], 32, limit=8)
    target = export.export_model(model, ["red", "green", "blue"], str(tmp_path / "m"), "# card",
                                 EVALUATION, tflite_images=images)  # fmt: skip
    evaluation = json.loads(Path(os.path.join(target, "evaluation.json")).read_text())
    assert evaluation["tflite_max_abs_difference"] < 1e-4
    assert (
        "max |probability difference| vs the SavedModel on 8 test images"
        in Path(os.path.join(target, "model_card.md")).read_text()
    )
    assert os.path.getsize(os.path.join(target, "model.tflite")) > 0


def test_latest_never_points_at_a_half_written_version(model, tmp_path, monkeypatch):
    destination = str(tmp_path / "models")
    first = export.export_model(model, ["a", "b", "c"], destination, "# v1", EVALUATION)
    calls = []

    def failing_upload(local_path, uri):
        calls.append(uri)
        if len(calls) == 3:
            raise storage.StorageError(f"{uri}: connection reset")
        storage.write_bytes(uri, Path(local_path).read_bytes())

    monkeypatch.setattr(export.storage, "upload_file", failing_upload)
    with pytest.raises(storage.StorageError, match="connection reset"):
        export.export_model(model, ["a", "b", "c"], destination, "# v2", EVALUATION)
    assert export.latest_version(destination) == os.path.basename(first)
    assert export.load_exported(first)[1] == ["a", "b", "c"]


def test_new_versions_are_increasing_integers(tmp_path):
    import datetime

    now = datetime.datetime(2026, 11, 23, 14, 30, 0, tzinfo=datetime.UTC)
    first = export.new_version(str(tmp_path), now)
    storage.write_text(str(tmp_path / first / "labels.json"), "[]")
    assert (first, export.new_version(str(tmp_path), now)) == ("20261123143000", "20261123143001")


def test_concurrent_move_of_latest_fails_for_the_loser(tmp_path):
    pointer = str(tmp_path / "latest")
    storage.write_text(pointer, "1")
    _, generation = storage.read_versioned(pointer)
    storage.write_if_generation(pointer, b"2", generation)  # the winner
    with pytest.raises(storage.PreconditionFailed):
        storage.write_if_generation(pointer, b"3", generation)  # read before the winner wrote
    assert storage.read_text(pointer) == "2"
    with pytest.raises(storage.PreconditionFailed):
        storage.write_if_generation(pointer, b"4", 0)  # "only if absent"


def test_export_folder_without_labels_is_a_clear_error(tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "model.keras").write_bytes(b"")
    with pytest.raises(UserError, match="has no labels.json: give an export folder"):
        export.load_exported(str(tmp_path / "v1"))
