"""extract_bottlenecks through kfp.local, fed by split_data, with and without the cache."""

import json
import os
from pathlib import Path

import pytest
from kfp import dsl

from devtools.imagegen import write_class_folders
from kftransfer.components.extract_bottlenecks import extract_bottlenecks
from kftransfer.components.split_data import split_data


@dsl.pipeline
def split_and_extract(source: str, cache_uri: str) -> dsl.Dataset:
    split = split_data(source=source, val_fraction=0.25, test_fraction=0.25, min_images_per_class=5)
    return extract_bottlenecks(
        splits=split.outputs["splits"],
        cache_uri=cache_uri,
        part_index=0,
        part_count=1,
        weights="none",
        image_size=32,
    ).outputs["features"]


@pytest.mark.usefixtures("kfp_local")
def test_extract_component_writes_features_and_reuses_the_cache(tmp_path):
    root = str(tmp_path / "data")
    write_class_folders(root, {"red": 10, "blue": 10})
    cache = str(tmp_path / "cache")
    first = split_and_extract(source=root, cache_uri=cache).output
    manifest = json.loads(Path(os.path.join(first.path, "manifest.json")).read_text())
    assert manifest["backbone"] == "mobilenet_v2" and manifest["dim"] == 1280
    assert first.metadata["extracted"] == 20 and first.metadata["reused"] == 0
    assert first.metadata["train_rows"] == manifest["splits"]["train"]["rows"]
    second = split_and_extract(source=root, cache_uri=cache).output
    assert second.metadata["extracted"] == 0 and second.metadata["reused"] == 20
