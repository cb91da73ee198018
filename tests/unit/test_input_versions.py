"""The first step's hash: the source's listing and the backbone and weights files' versions."""

import os

from devtools.imagegen import write_class_folders
from kftransfer.components.core import storage
from kftransfer.components.core.input_versions import inputs_fingerprint, model_files


def test_a_weights_file_overwritten_in_place_changes_the_hash(root):
    data, weights = storage.join(root, "data"), storage.join(root, "vgg.weights.h5")
    write_class_folders(data, {"cat": 2, "dog": 2})
    storage.write_bytes(weights, b"weights A")
    first = inputs_fingerprint(data, "vgg16", weights)
    assert inputs_fingerprint(data, "vgg16", weights) == first
    storage.write_bytes(weights, b"weights B")  # the same path (or object), other weights
    assert inputs_fingerprint(data, "vgg16", weights) != first
    # names are no files: the hash is the source's alone, whatever they are
    named = {inputs_fingerprint(data, b, w) for b in ("vgg16", "keras_hub:dinov2_small")
             for w in ("imagenet", "none", "")}  # fmt: skip
    assert len(named) == 1


def test_backbone_files_and_preset_folders_are_hashed_by_version(tmp_path):
    data = str(tmp_path / "data")
    write_class_folders(data, {"cat": 2, "dog": 2})
    model, preset = tmp_path / "domain.keras", tmp_path / "preset"
    model.write_bytes(b"model")
    preset.mkdir()
    (preset / "config.json").write_text("{}")
    backbones = f"mobilenet_v2,{model},keras_hub:{preset}"
    assert model_files(backbones.split(","), "imagenet") == [str(model), str(preset)]
    first = inputs_fingerprint(data, backbones)
    (preset / "config.json").write_text('{"changed": 1}')
    second = inputs_fingerprint(data, backbones)
    os.utime(model, ns=(1, 1))  # replaced with an old time: its change time moves
    assert len({first, second, inputs_fingerprint(data, backbones)}) == 3
    assert inputs_fingerprint(data, f"{tmp_path}/gone.keras") != inputs_fingerprint(data)
