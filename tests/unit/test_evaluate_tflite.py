"""TFLite is judged in the evaluation step (report, metrics, verdict); the export copies it."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kftransfer.components.core import evaluate_tflite, export, storage
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.evaluate import evaluate_stages
from kftransfer.components.core.layout import read_labels, read_rows
from kftransfer.components.core.model_card import tflite_figures
from kftransfer.components.core.report import render_report
from kftransfer.components.core.tflite import accuracy_drop, gate_reason
from kftransfer.pipelines.summary import format_summary


@pytest.fixture(scope="module")
def stages(tuned):
    return (tuned["split"], tuned["features"], tuned["head"], tuned["model"])


@pytest.fixture(scope="module")
def evaluation(stages):
    return evaluate_stages(*stages, "", EvalConfig())


def judged(evaluation, stages, folder, **config):
    return evaluate_tflite.judge_tflite(
        evaluation, stages[0], stages[3], EvalConfig(**config), str(folder)
    )


@pytest.mark.parametrize("mode", ["float", "dynamic"])
def test_the_tflite_model_is_judged_with_the_others_and_exported_as_judged(
    stages, evaluation, tmp_path, mode
):
    assert evaluation.verdict.blessed
    result = judged(evaluation, stages, tmp_path / "tflite", tflite=mode)
    report = result.tflite
    assert report["mode"] == mode and report["test_images"] == len(read_rows(stages[0], "test"))
    assert report["saved_model_accuracy"] == 1.0  # the learnable task
    assert report["drop_points"] <= 1.0
    if mode == "float":
        assert report["max_abs_difference"] < 1e-4
    assert result.verdict.blessed and result.verdict.reasons[:-1] == evaluation.verdict.reasons
    assert result.verdict.reasons[-1].startswith(f"PASS: TFLite ({mode}) test accuracy ")
    assert result.metrics_summary()["tflite_drop_points"] == report["drop_points"]
    assert f"<td>accuracy of model.tflite</td><td>{report['accuracy']:.4f}</td>" in render_report(
        result, {}, {}
    )
    flat = (tmp_path / "tflite" / "model.tflite").read_bytes()
    assert len(flat) == report["bytes"]
    assert storage.read_json(str(tmp_path / "tflite" / "tflite.json")) == report

    storage.write_json(str(tmp_path / "evaluation.json"), result.to_json())
    recorded = export.export_run(
        *stages, str(tmp_path / "evaluation.json"), str(tmp_path / "tflite"), str(tmp_path / "m")
    )
    target = recorded["uri"]
    assert Path(target, "model.tflite").read_bytes() == flat  # the judged bytes
    card = Path(target, "model_card.md").read_text()
    assert f"`model.tflite` ({mode}, " in card and "points lost" in card
    assert recorded["version"] == os.path.basename(target) and recorded["tflite_mode"] == mode
    assert recorded["tflite_drop_points"] == report["drop_points"]
    assert recorded["tflite_mib"] == report["bytes"] / 2**20


def test_without_tflite_the_folder_says_so_and_nothing_changes(stages, evaluation, tmp_path):
    result = judged(evaluation, stages, tmp_path / "tflite")
    assert result is evaluation and result.tflite is None
    assert os.listdir(tmp_path / "tflite") == ["tflite.json"]  # the artifact always exists
    assert storage.read_json(str(tmp_path / "tflite" / "tflite.json")) == {"mode": "none"}
    assert "<h2>TFLite</h2>" not in render_report(result, {}, {})
    assert "tflite_accuracy" not in result.metrics_summary()


def test_a_quantized_model_that_loses_accuracy_is_not_blessed(
    stages, evaluation, tmp_path, monkeypatch
):
    """int8 ranges calibrated on black images: the model collapses, the verdict fails."""
    request = evaluate_tflite.tflite_request

    def black_calibration(*args):
        made = request(*args)
        made.representative = np.zeros_like(made.representative[:8])
        return made

    monkeypatch.setattr(evaluate_tflite, "tflite_request", black_calibration)
    result = judged(evaluation, stages, tmp_path / "tflite", tflite="int8")
    assert not result.verdict.blessed and evaluation.verdict.blessed
    assert result.verdict.reasons[-1].startswith("FAIL: TFLite (int8) test accuracy ")
    assert result.verdict.reasons[-1].endswith(
        "more than --max-tflite-drop 1 (try --tflite dynamic, fp16 or float)"
    )
    assert result.tflite["drop_points"] > 1


def test_a_model_the_converter_refuses_is_not_blessed_and_the_evaluation_is_written(
    stages, evaluation, tmp_path, monkeypatch
):
    """int8 calibrated on images of the wrong size: the converter raises. Before, that
    failed the evaluation step: no report, no evaluation.json, no verdict, a traceback."""
    request = evaluate_tflite.tflite_request

    def misshapen_calibration(*args):
        made = request(*args)
        made.representative = np.zeros((4, 7, 7, 3), np.uint8)
        return made

    monkeypatch.setattr(evaluate_tflite, "tflite_request", misshapen_calibration)
    folder = tmp_path / "tflite"
    result = judged(evaluation, stages, folder, tflite="int8")
    assert not result.verdict.blessed and evaluation.verdict.blessed
    assert result.verdict.reasons[-1].startswith("FAIL: TFLite (int8) conversion failed: ")
    assert result.verdict.reasons[-1].endswith("(try --tflite dynamic, fp16 or float, or none)")
    assert json.loads((folder / "tflite.json").read_text()) == result.tflite
    assert not (folder / "model.tflite").exists()
    assert "tflite_accuracy" not in result.metrics_summary()
    assert "could not be converted" in render_report(result, {}, {})
    figures = tflite_figures(result.tflite)  # the run's summary: before, a KeyError
    assert figures == {"mode": "int8", "error": result.tflite["error"]}
    summary = {"head": {"val_accuracy": 0.9, "test_accuracy": 0.9}, "fine_tuned": {
        "val_accuracy": 0.9, "test_accuracy": 0.9}, "blessed": False, "reasons": [],
        "report": "", "exported": None, "tflite": figures}  # fmt: skip
    line = format_summary(summary).splitlines()[-1]
    assert line == f"tflite:   int8, conversion failed: {result.tflite['error']}"


def test_the_gate_line_says_what_was_lost_and_against_what():
    report = {"mode": "int8", "accuracy": 0.8, "saved_model_accuracy": 0.84,
              "drop_points": 4.0, "test_images": 435}  # fmt: skip
    assert gate_reason(report, 5) == (
        "PASS: TFLite (int8) test accuracy 0.8000, 4.00 points below the model's 0.8400 on "
        "the same 435 images, within --max-tflite-drop 5"
    )
    assert gate_reason(report, 1).startswith("FAIL: TFLite (int8) test accuracy 0.8000, 4.00")
    assert gate_reason({**report, "drop_points": 1.0}, 1).startswith("PASS")


def test_a_drop_of_exactly_the_limit_passes():
    """Before: from the accuracies, 90/100 against 89/100 was a drop of 1.0000000000000009
    points, which failed --max-tflite-drop 1 (on 100 test images, 80 of the 100 one-point
    drops did)."""
    for images in (100, 200, 300, 1000):
        labels = np.zeros(images, dtype=int)
        for right in range(images // 2, images):
            reference = np.eye(2)[(np.arange(images) >= right).astype(int)]  # `right` right
            ours = np.eye(2)[(np.arange(images) >= right - images // 100).astype(int)]
            report = {
                "mode": "int8",
                "test_images": images,
                **accuracy_drop(ours, reference, labels),
            }
            assert report["drop_points"] == 1  # one point: images // 100 fewer right
            assert gate_reason(report, 1).startswith("PASS")


def test_the_export_refuses_a_tflite_folder_of_another_evaluation(stages, evaluation, tmp_path):
    result = judged(evaluation, stages, tmp_path / "tflite", tflite="float")
    other = result.to_json()
    other["tflite"] = {**other["tflite"], "accuracy": 0.5}
    storage.write_json(str(tmp_path / "evaluation.json"), other)
    with pytest.raises(UserError, match="does not hold the TFLite model the evaluation judged"):
        export.export_run(*stages, str(tmp_path / "evaluation.json"),
                          str(tmp_path / "tflite"), str(tmp_path / "m"))  # fmt: skip
    assert not (tmp_path / "m").exists()


def test_tflite_images_cover_every_class_when_the_split_is_larger(tuned):
    """The CSVs list each class's rows together: the first N rows would be one class."""
    labels = read_labels(tuned["split"])
    rows = read_rows(tuned["split"], "train")
    assert rows[0].label == rows[len(rows) // len(labels) - 1].label  # grouped by class
    limit = len(labels) * 2
    images, ids = evaluate_tflite.split_images(tuned["split"], "train", 32, labels, limit)
    assert len(images) == limit
    counts = np.bincount(ids, minlength=len(labels))
    shares = np.bincount([labels.index(r.label) for r in rows], minlength=len(labels))
    assert counts.min() >= 1  # the first `limit` rows would hold the first class only
    assert np.abs(counts - limit * shares / len(rows)).max() <= 1  # in proportion


def test_spread_sample_is_even_and_keeps_everything_below_the_limit():
    assert evaluate_tflite.spread_sample(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert evaluate_tflite.spread_sample(list(range(7)), 3) == [0, 2, 4]
    assert evaluate_tflite.spread_sample([1, 2], 5) == [1, 2]
