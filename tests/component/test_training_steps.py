"""train_head, fine_tune, evaluate_model and export_model through kfp.local."""

import json
import os
from pathlib import Path

from kfp import dsl

from devtools.imagegen import class_image, encode, write_class_folders
from kftransfer.components.core import listing
from kftransfer.components.evaluate_model import evaluate_model
from kftransfer.components.export_model import export_model
from kftransfer.components.extract_bottlenecks import extract_bottlenecks
from kftransfer.components.fine_tune import fine_tune
from kftransfer.components.split_data import split_data
from kftransfer.components.train_head import train_head


@dsl.pipeline
def train_and_export(
    source: str, checkpoint_uri: str, destination: str, min_accuracy: float, tflite: str
):
    split = split_data(source=source, min_images_per_class=5)
    splits = split.outputs["splits"]
    features = extract_bottlenecks(
        splits=splits, cache_uri="", part_index=0, part_count=1,
        backbone="vgg16", weights="none", image_size=32,
    ).outputs["features"]  # fmt: skip
    head = train_head(
        features=features, checkpoint_uri=checkpoint_uri, tensorboard_uri="",
        head_epochs=20, head_normalize=True, head_sweep=3,
    ).outputs["head"]  # fmt: skip
    model = fine_tune(
        splits=splits, features=features, head=head, cache_uri="", export_uri=destination,
        checkpoint_uri=checkpoint_uri, tensorboard_uri="", fine_tune_epochs=1,
        fine_tune_batch_size=16,
    ).outputs["model"]  # fmt: skip
    stages = {"splits": splits, "features": features, "head": head, "model": model}
    evaluation = evaluate_model(
        **stages, export_uri=destination, cache_uri="", min_accuracy=min_accuracy, tflite=tflite
    )
    with dsl.If(evaluation.outputs["Output"] == True):  # noqa: E712 - a KFP condition
        export_model(
            **stages,
            evaluation=evaluation.outputs["evaluation"],
            tflite_model=evaluation.outputs["tflite_model"],
            export_uri=destination,
        )


def task_folder(kfp_local: str, task: str) -> str:
    runs = sorted(os.listdir(kfp_local))
    return os.path.join(kfp_local, runs[-1], task)


def test_training_evaluation_and_export_components(kfp_local, tmp_path):
    counts = {"train": 14, "val": 5, "test": 5}
    for split, n in counts.items():
        classes = dict.fromkeys(("red", "green", "blue"), n)
        write_class_folders(str(tmp_path / "data" / split), classes, seed=len(split))
    destination, checkpoints = str(tmp_path / "models"), str(tmp_path / "ckpt")
    train_and_export(source=str(tmp_path / "data"), checkpoint_uri=checkpoints,
                     destination=destination, min_accuracy=0.5, tflite="float")  # fmt: skip
    head = task_folder(kfp_local, "train-head")
    assert sorted(os.listdir(os.path.join(head, "head"))) == [
        "config.json",
        "history.json",
        "model.keras",
        "summary.json",
    ]
    metrics = json.loads(Path(os.path.join(head, "metrics")).read_text())
    assert metrics["sweep_trials"] == 3  # the sweep's trials reach the KFP metrics
    assert {f"sweep_trial_{i}_val_accuracy" for i in range(3)} <= set(metrics)
    curves = Path(os.path.join(head, "curves")).read_text()
    assert curves.startswith("<!doctype html>") and "data:image/png;base64," in curves
    tuned = task_folder(kfp_local, "fine-tune")
    assert sorted(os.listdir(os.path.join(tuned, "model"))) == [
        "config.json",
        "history.json",
        "model.keras",
        "summary.json",
    ]
    assert listing.list_files(checkpoints) == []  # per-run checkpoints deleted after success

    evaluated = task_folder(kfp_local, "evaluate-model")
    evaluation = json.loads(Path(os.path.join(evaluated, "evaluation")).read_text())
    assert evaluation["verdict"]["blessed"] is True
    assert evaluation["fine_tuned"]["examples"] == sum(
        map(sum, evaluation["fine_tuned"]["confusion"])
    )
    report = Path(os.path.join(evaluated, "report")).read_text()
    assert "BLESSED: exported" in report and "Head sweep (3 trials on cached features)" in report
    assert "<h2>TFLite</h2>" in report and evaluation["verdict"]["reasons"][-1].startswith(
        "PASS: TFLite (float) test accuracy"
    )
    version = Path(os.path.join(destination, "latest")).read_text()
    judged = Path(evaluated, "tflite_model", "model.tflite").read_bytes()
    assert Path(destination, version, "model.tflite").read_bytes() == judged
    assert sorted(os.listdir(os.path.join(destination, version)))[:4] == [
        "assets", "evaluation.json", "fingerprint.pb", "labels.json"
    ]  # fmt: skip
    card = Path(os.path.join(destination, version, "model_card.md")).read_text()
    assert f"version {version}" in card and "Verdict: blessed" in card
    assert "turns a JPEG upright by its EXIF orientation" in card

    # A red image labelled green in the test split: accuracy 1.0 is out of reach, so a
    # second run is evaluated against production and reported, and nothing is exported.
    red = class_image(2, 999)  # class 2 of the sorted names: "red"
    (tmp_path / "data" / "test" / "green" / "mislabelled.png").write_bytes(encode(red))
    train_and_export(source=str(tmp_path / "data"), checkpoint_uri=checkpoints,
                     destination=destination, min_accuracy=1.0, tflite="none")  # fmt: skip
    evaluated = task_folder(kfp_local, "evaluate-model")
    second = json.loads(Path(os.path.join(evaluated, "evaluation")).read_text())
    assert second["production_version"] == version
    assert second["verdict"]["blessed"] is False and second["tflite"] is None
    assert os.listdir(os.path.join(evaluated, "tflite_model")) == ["tflite.json"]
    assert second["verdict"]["reasons"][2].startswith("FAIL: test accuracy")
    assert Path(os.path.join(destination, "latest")).read_text() == version
    hidden = [".claims", ".latest.lock", ".staging"]  # serving skips non-integer names
    assert sorted(os.listdir(destination)) == [*hidden, version, "latest"]
