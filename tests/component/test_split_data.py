"""split_data through kfp.local: the artifact folder and its metadata."""

import json
import os
from pathlib import Path

import pytest

from devtools.imagegen import broken_files, write_class_folders
from kftransfer.components.split_data import split_data


@pytest.mark.usefixtures("kfp_local")
def test_split_data_component_writes_the_splits_artifact(tmp_path):
    root = str(tmp_path / "data")
    write_class_folders(root, {"cat": 12, "dog": 12})
    (tmp_path / "data" / "dog" / "bad.jpg").write_bytes(broken_files()["notes.jpg"][0])
    task = split_data(source=root, val_fraction=0.25, test_fraction=0.25, min_images_per_class=5)
    splits = task.outputs["splits"]
    assert sorted(os.listdir(splits.path)) == [
        "labels.json", "stats.json", "test.csv", "train.csv", "validation.csv"
    ]  # fmt: skip
    stats = json.loads(Path(os.path.join(splits.path, "stats.json")).read_text())
    assert stats["config"] == {"val_fraction": 0.25, "test_fraction": 0.25, "seed": 0}
    assert sum(splits.metadata[s] for s in ("train", "validation", "test")) == 24
    assert splits.metadata["classes"] == 2
    assert splits.metadata["skipped"] == 1


def test_component_defaults_come_from_the_config_dataclass():
    from kftransfer.components.core.config import SplitConfig

    inputs = split_data.component_spec.inputs
    assert inputs["val_fraction"].default == SplitConfig.val_fraction
    assert inputs["min_image_side"].default == SplitConfig.min_image_side
    assert inputs["source"].default is None
