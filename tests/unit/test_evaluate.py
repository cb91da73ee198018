"""evaluate: metrics of both models, the production comparison, and the report's contents."""

import dataclasses
import html
import os
import re
import shutil

import numpy as np
import pytest

from kftransfer.components.core import export
from kftransfer.components.core.backbones import load_backbone
from kftransfer.components.core.config import EvalConfig, HeadConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.evaluate import evaluate_stages
from kftransfer.components.core.fine_tune_model import build_fine_tune_model
from kftransfer.components.core.heads import build_head
from kftransfer.components.core.layout import (
    SPLITS,
    read_labels,
    read_rows,
    read_stats,
    split_rule,
    stage_model,
    write_split_folder,
)
from kftransfer.components.core.model_io import load_model, save_model
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.report import render_report


def run(tuned, destination="", **config):
    stages = (tuned["head"], tuned["model"])
    return evaluate_stages(
        tuned["split"], tuned["features"], *stages, destination, EvalConfig(**config)
    )


def test_both_models_are_measured_on_the_whole_test_split(tuned):
    result = run(tuned, min_accuracy=0.5)
    tests = len(read_rows(tuned["split"], "test"))
    assert result.head["examples"] == result.fine_tuned["examples"] == tests
    assert result.head["accuracy"] >= 0.9  # the learnable task
    assert sum(map(sum, result.fine_tuned["confusion"])) == tests
    assert result.production is None
    assert re.match(r"PASS: test accuracy 1.0000 \(\d+/\d+\) beats always '\w+' ",
                    result.verdict.reasons[0])  # fmt: skip
    assert result.verdict.reasons[3] == "PASS: no export destination given: nothing to compare with"
    wrong = tests - round(result.fine_tuned["accuracy"] * tests)
    assert len(result.misclassified) == min(wrong, 24)


def test_the_production_model_is_compared_on_the_same_images(tuned, tmp_path):
    destination = str(tmp_path / "models")
    assert (
        run(tuned, destination)
        .verdict.reasons[3]
        .endswith(f"no production model at {destination} yet")
    )
    export.export_model(
        load_model(tuned["model_file"]), read_labels(tuned["split"]), destination, "#", {}
    )
    result = run(tuned, destination, baseline_tolerance=0.0)
    assert result.production == result.fine_tuned  # the same model is in production
    assert re.match(r"PASS: test accuracy .* >= the production model's .* minus the tolerance",
                    result.verdict.reasons[3])  # fmt: skip
    # a rerun on unchanged data (every step cached) must not export a duplicate version
    assert not result.verdict.blessed
    assert result.verdict.reasons[4] == (
        "FAIL: the same weights as the production model: nothing new to export"
    )


def test_a_production_model_of_other_classes_is_not_compared_nor_replaced(tuned, tmp_path):
    destination = str(tmp_path / "models")
    labels = read_labels(tuned["split"])
    production = [*labels[:-1], "lost"]  # the candidate lost the class 'lost', gained one
    export.export_model(load_model(tuned["model_file"]), production, destination, "#", {})
    result = run(tuned, destination)
    assert result.production is None and result.production_version is not None
    assert not result.verdict.blessed  # before: blessed, the class silently gone
    assert result.verdict.reasons[3] == (
        f"FAIL: the classes differ from the production model's (version "
        f"{result.production_version}): lost 'lost'; new {labels[-1]!r}: not compared; if "
        "intended, pass --allow-class-change (else restore the source's class folders)"
    )
    allowed = run(tuned, destination, allow_class_change=True)
    assert allowed.verdict.reasons[3].startswith("PASS: the classes differ")


def test_a_production_model_of_another_split_is_not_compared(tuned, tmp_path):
    """Judged on this run's test split it would score images it trained on: not compared."""
    destination = str(tmp_path / "models")
    rule = split_rule(read_stats(tuned["split"]))
    recorded = {**rule, "test_fraction": rule["test_fraction"] / 2}
    labels = read_labels(tuned["split"])
    model = load_model(tuned["model_file"])
    export.export_model(model, labels, destination, "#", {"split_rule": recorded})
    result = run(tuned, destination)
    assert result.production is None and result.split_rule == rule
    assert result.verdict.reasons[3] == (
        f"PASS: production version {result.production_version} was trained on another split "
        f"(test_fraction {recorded['test_fraction']} -> {rule['test_fraction']}): judged here "
        "it would score images it trained on; not compared"
    )
    export.export_model(model, labels, destination, "#", result.to_json())  # the same rule
    assert run(tuned, destination).production is not None


def test_a_weak_model_is_not_blessed_and_says_why(tuned, tmp_path):
    backbone = load_backbone("vgg16", "none", 32)
    untrained = build_fine_tune_model(backbone, build_head(512, 3, HeadConfig()), "avg")
    save_model(untrained, stage_model(str(tmp_path / "weak")))
    weak = {**tuned, "model": str(tmp_path / "weak")}
    result = run(weak, min_accuracy=0.9, min_class_recall=0.9)
    assert result.fine_tuned["accuracy"] < 0.9
    assert not result.verdict.blessed
    assert result.verdict.reasons[2].startswith("FAIL: test accuracy")
    assert result.verdict.reasons[4].startswith("FAIL: recall of")


def test_a_no_skill_model_is_never_blessed_whatever_the_flags(tuned, tmp_path):
    """Every image answered as one class, no threshold, no production: the gate refuses it."""
    backbone = load_backbone("vgg16", "none", 32)
    head = build_head(512, 3, HeadConfig())
    kernel, _ = head.layers[-1].get_weights()
    head.layers[-1].set_weights([kernel * 0, np.array([0.0, 0.0, 9.0])])  # always the third
    untrained = build_fine_tune_model(backbone, head, "avg")
    save_model(untrained, stage_model(str(tmp_path / "weak")))
    result = run({**tuned, "model": str(tmp_path / "weak")})
    skill, versus_head = result.verdict.reasons[:2]
    assert re.match(r"FAIL: test accuracy .* does not significantly beat always '\w+' .* "
                    r"\(one-sided binomial p=.* >= 0.01\)", skill), skill  # fmt: skip
    assert versus_head.startswith("FAIL: significantly worse than the head-only model")
    assert [r[:4] for r in result.verdict.reasons[2:]] == ["PASS", "PASS"]
    assert not result.verdict.blessed


def test_report_contains_every_plot_and_the_verdict(tuned):
    result = run(tuned)
    histories = {"head training": {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7],
                                   "sparse_categorical_accuracy": [0.5, 0.9],
                                   "val_sparse_categorical_accuracy": [0.4, 0.8]},
                 "fine-tuning": {"loss": [0.4], "val_loss": [0.6]}}  # fmt: skip
    page = render_report(result, histories, {"totals": {"train": 1, "validation": 2, "test": 3}})
    alts = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', page)
    assert alts[:5] == ["confusion matrix", "per-class recall", "per-class F1",
                        "head training curves", "fine-tuning curves"]  # fmt: skip
    leaked = result.near_duplicates["leaked"][:24]
    issues = result.label_issues["issues"][:24]
    assert alts[5 + len(result.misclassified)] == "reliability diagram"
    assert len(alts) == 5 + len(result.misclassified) + 1 + 2 * len(leaked) + len(issues)
    assert "<h2>Calibration</h2>" in page and "<h2>Near-duplicates</h2>" in page
    assert "<h2>Likely label errors</h2>" in page
    assert 'src="http' not in page and "<script" not in page  # self-contained
    for reason in result.verdict.reasons:
        assert html.escape(reason) in page
    assert "BLESSED: exported" in page
    assert "<th>head only</th><th>fine-tuned</th>" in page
    # the learnable task: no validation mistake, so no temperature to fit (before: T = 0.05)
    calibrated = result.calibration["fine_tuned"]
    assert calibrated["temperature"] == 1.0
    images = len(read_rows(tuned["split"], "validation"))
    said = f"not fitted: no mistake on the {images} validation images to fit it on"
    assert calibrated["temperature_from"] == said
    assert f"(fine-tuned: {said})" in page
    hostile = "<img src=x onerror=alert(1)>"  # a class folder's name, from anyone
    uri = read_rows(tuned["split"], "test")[0].uri
    result.misclassified.append({"uri": uri, "true": hostile, "predicted": "R&D", "probability": 1})
    page = render_report(result, histories, {})
    assert hostile not in page and f"true: {html.escape(hostile)}<br>predicted: R&amp;D" in page


def test_a_class_named_unknown_fails_only_with_a_minimum_confidence(tuned, tmp_path):
    """`unknown` would be both a class and the answer when unsure: ambiguous, not blessed."""
    labels = ["unknown" if name == read_labels(tuned["split"])[0] else name
              for name in read_labels(tuned["split"])]  # fmt: skip
    renamed = {old: new for old, new in zip(read_labels(tuned["split"]), labels, strict=True)}
    rows = [
        dataclasses.replace(row, label=renamed[row.label])
        for split in SPLITS
        for row in read_rows(tuned["split"], split)
    ]
    split = str(tmp_path / "split")
    write_split_folder(split, labels, rows, read_stats(tuned["split"]))
    unsure = run({**tuned, "split": split}, min_confidence=0.5)
    assert not unsure.verdict.blessed
    assert unsure.verdict.reasons[-1] == (
        "FAIL: a class is named 'unknown', which is also the answer below the minimum "
        "confidence 0.500: rename the class (e.g. 'other'), or set --min-confidence 0 and "
        "--target-precision 0"
    )
    assert all(r.startswith("PASS") for r in unsure.verdict.reasons[:-1])
    assert run({**tuned, "split": split}).verdict.blessed  # never answers 'unknown' itself


def test_test_images_gone_since_the_split_are_one_error_or_a_warning(
    tuned, tmp_path, caplog, monkeypatch
):
    # Before: none readable crashed with a TypeError; some gone went unsaid.
    monkeypatch.setattr(LOGGER, "propagate", True)  # setup_logging may have turned it off
    moved = tmp_path / "moved"
    rows = [row for split in SPLITS for row in read_rows(tuned["split"], split)]
    test = [row for row in rows if row.split == "test"]
    for row in test:
        target = moved / f"{row.sha256}.png"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(row.uri, target)
    gone = {row.uri: str(tmp_path / "gone" / os.path.basename(row.uri)) for row in test}
    rows = [dataclasses.replace(r, uri=gone.get(r.uri, r.uri)) for r in rows]
    split = str(tmp_path / "split")
    write_split_folder(split, read_labels(tuned["split"]), rows, read_stats(tuned["split"]))
    with pytest.raises(UserError) as raised:
        run({**tuned, "split": split})
    assert str(raised.value) == (
        f"none of the {len(test)} test images could be read (moved or deleted since the "
        "split? run again to split anew)"
    )
    back = {gone[row.uri]: str(moved / f"{row.sha256}.png") for row in test[1:]}
    rows = [dataclasses.replace(r, uri=back.get(r.uri, r.uri)) for r in rows]
    write_split_folder(split, read_labels(tuned["split"]), rows, read_stats(tuned["split"]))
    result = run({**tuned, "split": split})
    assert result.fine_tuned["examples"] == len(test) - 1 == result.head["examples"] - 1
    assert f"1 of the {len(test)} test images could not be read" in caplog.text
