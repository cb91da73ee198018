"""train_head and fine_tune through kfp.local, wired to split_data and extract_bottlenecks."""

import json
import os

from kfp import dsl

from kftransfer.components.core import storage
from kftransfer.components.extract_bottlenecks import extract_bottlenecks
from kftransfer.components.fine_tune import fine_tune
from kftransfer.components.split_data import split_data
from kftransfer.components.train_head import train_head
from tests.imagegen import write_class_folders


@dsl.pipeline
def train_both(source: str, checkpoint_uri: str) -> dsl.Model:
    split = split_data(source=source, val_fraction=0.25, test_fraction=0.2, min_images_per_class=5)
    features = extract_bottlenecks(
        splits=split.outputs["splits"], cache_uri="", part_index=0, part_count=1,
        backbone="vgg16", weights="none", image_size=32,
    ).outputs["features"]  # fmt: skip
    head = train_head(features=features, checkpoint_uri=checkpoint_uri,
                      run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, tensorboard_uri="",
                      head_epochs=20)  # fmt: skip
    return fine_tune(
        splits=split.outputs["splits"], features=features, head=head.outputs["head"],
        checkpoint_uri=checkpoint_uri, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        tensorboard_uri="", fine_tune_epochs=1, fine_tune_batch_size=16,
    ).outputs["model"]  # fmt: skip


def test_head_and_fine_tune_components(kfp_local, tmp_path):
    write_class_folders(str(tmp_path / "data"), {"red": 24, "green": 24, "blue": 24})
    model = train_both(source=str(tmp_path / "data"), checkpoint_uri=str(tmp_path / "ckpt")).output
    assert sorted(os.listdir(model.path)) == ["history.json", "model.keras"]
    assert model.metadata["epochs"] == 1
    assert 0 <= model.metadata["initial_val_accuracy"] <= 1
    assert model.metadata["trainable_parameters"] > 0
    run = os.path.join(kfp_local, os.listdir(kfp_local)[0])
    head = os.path.join(run, "train-head")
    assert sorted(os.listdir(os.path.join(head, "head"))) == ["head.keras", "history.json"]
    curves = open(os.path.join(head, "curves")).read()
    assert curves.startswith("<!doctype html>") and "data:image/png;base64," in curves
    history = json.load(open(os.path.join(head, "head", "history.json")))
    assert len(history["loss"]) == len(history["val_loss"]) >= 1
    assert storage.list_files(str(tmp_path / "ckpt")) == []  # deleted after success
