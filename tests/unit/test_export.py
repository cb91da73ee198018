"""Export: the bytes signature matches the Keras model, and `latest` only ever moves whole."""

import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from kftransfer.components.core import export, generations, storage, versions
from kftransfer.components.core import predict as predictor
from kftransfer.components.core.calibration import apply_temperature
from kftransfer.components.core.classifier import predict_images, with_flip_averaging
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.errors import PreconditionFailed, UserError
from kftransfer.components.core.evaluate import evaluate_stages
from kftransfer.components.core.layout import read_labels, read_rows
from kftransfer.components.core.model_io import load_model
from kftransfer.components.core.serving import write_saved_model

EVALUATION = {"verdict": {"blessed": True, "reasons": []}}


@pytest.fixture(scope="module")
def model(tuned):
    return load_model(tuned["model_file"])


def test_bytes_signature_gives_the_keras_models_probabilities(tuned, model, tmp_path):
    labels = read_labels(tuned["split"])
    target = export.export_model(model, labels, str(tmp_path / "models"), "# card", EVALUATION)
    version = os.path.basename(target)
    assert versions.latest_version(str(tmp_path / "models")) == version and version.isdigit()
    assert len(version) == 17  # YYYYMMDDHHMMSSmmm
    assert sorted(os.listdir(target)) == [
        "assets", "evaluation.json", "fingerprint.pb", "labels.json", "model.keras",
        "model_card.md", "saved_model.pb", "serving.json", "variables",
    ]  # fmt: skip
    assert export.exported_summary(target, str(tmp_path / "models"), EVALUATION) == {
        "version": version, "uri": target, "export_uri": str(tmp_path / "models"),
    }  # fmt: skip
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


def test_flip_averaging_is_served_as_it_was_judged(tuned, model, tmp_path):
    """--test-time-flip: evaluation and the exported SavedModel both average over mirrors."""
    uris = [row.uri for row in read_rows(tuned["split"], "test")]
    stages = (tuned["split"], tuned["features"], tuned["head"], tuned["model"])
    evaluation = evaluate_stages(*stages, "", EvalConfig(test_time_flip=True))
    assert evaluation.test_time_flip
    averaged, _ = predict_images(with_flip_averaging(model), uris)
    assert np.abs(averaged - predict_images(model, uris)[0]).max() > 1e-6  # mirrors differ
    evaluation_json = evaluation.to_json()
    evaluation_json["calibration"]["fine_tuned"].update(temperature=1.0, min_confidence=0.0)
    storage.write_json(str(tmp_path / "evaluation.json"), evaluation_json)
    target = export.export_run(
        *stages, str(tmp_path / "evaluation.json"), str(tmp_path / "no-tflite"),
        str(tmp_path / "models"),
    )["uri"]  # fmt: skip
    assert storage.read_json(f"{target}/serving.json")["test_time_flip"] is True
    serving = tf.saved_model.load(target).signatures["serving_default"]
    out = serving(image_bytes=tf.constant([storage.read_bytes(u) for u in uris]))
    np.testing.assert_allclose(out["probabilities"].numpy(), averaged, atol=1e-5)


def test_calibrated_export_answers_unknown_below_the_chosen_confidence(tuned, model, tmp_path):
    """Evaluation's temperature and threshold reach the SavedModel, .keras and predict."""
    uris = [row.uri for row in read_rows(tuned["split"], "test")]
    raw, _ = predict_images(model, uris)
    temperature = 4.0
    calibrated = apply_temperature(raw, temperature)
    confidences = np.unique(calibrated.max(axis=1))
    middle = len(confidences) // 2  # about half the images below, none at the boundary
    threshold = float(confidences[middle - 1 : middle + 1].mean())
    stages = (tuned["split"], tuned["features"], tuned["head"], tuned["model"])
    evaluation = evaluate_stages(*stages, "", EvalConfig()).to_json()
    evaluation["calibration"]["fine_tuned"].update(temperature=4.0, min_confidence=threshold)
    storage.write_json(str(tmp_path / "evaluation.json"), evaluation)
    destination = str(tmp_path / "models")
    target = export.export_run(
        *stages, str(tmp_path / "evaluation.json"), str(tmp_path / "no-tflite"), destination
    )["uri"]
    assert storage.read_json(f"{target}/serving.json") == {
        "temperature": 4.0, "min_confidence": threshold, "unknown_label": "unknown",
        "test_time_flip": False,
    }  # fmt: skip
    serving = tf.saved_model.load(target).signatures["serving_default"]
    out = serving(image_bytes=tf.constant([storage.read_bytes(u) for u in uris]))
    np.testing.assert_allclose(out["probabilities"].numpy(), calibrated, atol=1e-5)
    labels = read_labels(tuned["split"])
    sure = calibrated.max(axis=1) >= threshold
    expected = [
        labels[i] if ok else "unknown" for i, ok in zip(calibrated.argmax(1), sure, strict=True)
    ]
    assert [s.decode() for s in out["label"].numpy()] == expected
    assert 0 < sure.sum() < len(uris)  # both answers occur
    network, names, own_threshold = predictor.load_predictor(destination)
    assert own_threshold == threshold
    np.testing.assert_allclose(predict_images(network, uris)[0], calibrated, atol=1e-5)
    answers = [p.label for p in predictor.predict(network, names, uris, 1, 32, own_threshold)]
    assert answers == expected


def test_a_failed_publish_leaves_no_numbered_folder_and_latest_as_it_was(
    model, tmp_path, monkeypatch
):
    destination = str(tmp_path / "models")
    first = export.export_model(model, ["a", "b", "c"], destination, "# v1", EVALUATION)

    def copy_half_then_fail(src, dst):
        os.makedirs(dst)
        shutil.copy(os.path.join(src, "saved_model.pb"), dst)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(versions.shutil, "copytree", copy_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        export.export_model(model, ["a", "b", "c"], destination, "# v2", EVALUATION)
    assert [n for n in os.listdir(destination) if n.isdigit()] == [os.path.basename(first)]
    assert versions.latest_version(destination) == os.path.basename(first)
    assert export.load_exported(first)[1] == ["a", "b", "c"]


def test_a_local_version_can_be_read_by_a_server_of_another_user(model, tmp_path):
    """Before: each folder kept the 0700 of the temporary folder it was built in, so a TF
    Serving container of another uid, mounting DEST, could not enter the version."""
    version = export.export_model(model, ["a", "b", "c"], str(tmp_path / "m"), "#", EVALUATION)
    modes = {}
    for folder, _, files in os.walk(version):
        modes[folder] = os.stat(folder).st_mode & 0o777
        modes.update({f"{folder}/{f}": os.stat(f"{folder}/{f}").st_mode & 0o777 for f in files})
    folders = [p for p in modes if os.path.isdir(p)]
    assert version in folders and f"{version}/variables" in folders
    assert {modes[p] for p in folders} == {0o755}
    assert {mode for p, mode in modes.items() if p not in folders} == {0o644}


def test_claimed_versions_are_unique_and_increasing(tmp_path):
    import datetime

    now = datetime.datetime(2026, 11, 23, 14, 30, 0, 123456, tzinfo=datetime.UTC)
    first = versions.claim_version(str(tmp_path), now)
    second = versions.claim_version(str(tmp_path), now)  # the same millisecond
    (tmp_path / "20261123143000125").mkdir()  # published by someone else
    third = versions.claim_version(str(tmp_path), now)
    assert (first, second, third) == ("20261123143000123", "20261123143000124",
                                      "20261123143000126")  # fmt: skip
    assert int(first) > 20261123143000  # later than second-resolution versions before


def test_latest_only_moves_forward(tmp_path):
    versions.move_latest(str(tmp_path), "20261123143000200")
    versions.move_latest(str(tmp_path), "20261123143000100")  # an export that finished later
    assert (tmp_path / "latest").read_text() == "20261123143000200"
    versions.move_latest(str(tmp_path), "20261123143000300")
    assert (tmp_path / "latest").read_text() == "20261123143000300"


def test_a_stale_writer_of_latest_is_refused(tmp_path):
    pointer = str(tmp_path / "latest")
    storage.write_text(pointer, "1")
    _, generation = generations.read_versioned(pointer)
    generations.write_if_generation(pointer, b"2", generation)  # the winner
    with pytest.raises(PreconditionFailed):
        generations.write_if_generation(pointer, b"3", generation)  # read before the winner wrote
    assert storage.read_text(pointer) == "2"
    with pytest.raises(PreconditionFailed):
        generations.write_if_generation(pointer, b"4", 0)  # "only if absent"


def test_export_folder_without_labels_is_a_clear_error(tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "model.keras").write_bytes(b"")
    with pytest.raises(UserError, match="has no labels.json: give an export folder"):
        export.load_exported(str(tmp_path / "v1"))


def test_a_damaged_evaluation_of_production_is_a_one_line_error(tmp_path):
    """Before: a raw JSONDecodeError traceback, from every later run's evaluation (and warm
    start), naming neither the file nor what to do."""
    folder = tmp_path / "7"
    folder.mkdir()
    assert export.exported_evaluation(str(folder)) == {}  # exported before it was written
    for damaged in (b'{"verdict": {"bless', b"[1, 2]", b"\xff\xfe"):
        (folder / "evaluation.json").write_bytes(damaged)
        said = f"{folder}/evaluation.json is not a JSON object .* delete the version folder "
        with pytest.raises(UserError, match=said + f"{folder} to roll production back"):
            export.exported_evaluation(str(folder))


def test_a_binary_model_is_exported_with_a_column_per_label_at_any_temperature(tmp_path):
    """Before: at T = 1 a sigmoid model's `model.keras` answered one column, p(class 1),
    so `labels.json` read in "output order" named the wrong class; at T != 1, two."""
    import keras

    inputs = keras.Input((4, 4, 3), dtype="uint8")
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    sigmoid = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(flat))
    images = np.random.default_rng(0).integers(0, 255, (5, 4, 4, 3)).astype("uint8")
    p = sigmoid.predict_on_batch(images)[:, 0]
    for temperature in (1.0, 0.5):
        serving = {"temperature": temperature, "test_time_flip": False, "min_confidence": 0.0}
        model = export.serving_model(sigmoid, serving)
        destination = str(tmp_path / f"t{temperature}")
        target = export.export_model(model, ["a", "b"], destination, "# card", EVALUATION)
        exported, labels = export.load_exported(target)
        out = exported.predict_on_batch(images)
        assert labels == ["a", "b"] and out.shape == (5, 2)
        if temperature == 1.0:
            np.testing.assert_allclose(out, np.stack([1 - p, p], axis=1), atol=1e-6)
        else:  # sharpened, the same answers
            assert (out.argmax(1) == (p >= 0.5)).all()


def test_the_serving_signature_refuses_what_the_split_refuses_from_the_header(
    tuned, model, tmp_path
):
    """Before: `serving_default` decoded whatever TensorFlow could: a 0.39 MB PNG of
    20000x20000 px took 0.9 GB more, and a palette BMP was answered from misread pixels."""
    from tests import refused_images

    good = read_rows(tuned["split"], "test")[0].uri
    files = refused_images.files(good)
    write_saved_model(model, read_labels(tuned["split"]), str(tmp_path / "v"), 0.0,
                             refused_images.CAP)  # fmt: skip
    serving = tf.saved_model.load(str(tmp_path / "v")).signatures["serving_default"]
    assert serving(image_bytes=tf.constant([files["a.png"]]))["probabilities"].shape[0] == 1
    for name, error in zip(("b.bmp", "c.png"), refused_images.ERRORS[1:], strict=True):
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(error)):
            serving(image_bytes=tf.constant([files["a.png"], files[name]]))
