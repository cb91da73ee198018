"""The pipeline as it stands: compiles to a KFP v2 spec and runs end to end with kfp.local."""

import json
import os

import yaml

from kftransfer.components.component import DEFAULT_IMAGE
from kftransfer.pipelines.transfer_learning import compile_pipeline, transfer_learning
from tests.imagegen import write_class_folders


def test_compiled_spec_has_the_split_step_in_the_kftransfer_image(tmp_path):
    path = tmp_path / "pipeline.yaml"
    compile_pipeline(str(path))
    spec = yaml.safe_load(path.read_text())
    assert spec["pipelineInfo"]["name"] == "kftransfer"
    assert set(spec["root"]["dag"]["tasks"]) == {
        "split-data", "extract-bottlenecks", "train-head", "fine-tune", "evaluate-model",
        "condition-1",
    }  # fmt: skip
    executor = spec["deploymentSpec"]["executors"]["exec-split-data"]["container"]
    assert executor["image"] == DEFAULT_IMAGE
    assert "pip install" not in json.dumps(executor["command"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["val_fraction"]["defaultValue"] == 0.15
    assert "defaultValue" not in params["source"]


def test_pipeline_runs_locally(kfp_local, tmp_path):
    root = str(tmp_path / "data")
    write_class_folders(root, {"cat": 12, "dog": 12})
    transfer_learning(
        source=root, min_images_per_class=5, val_fraction=0.25, test_fraction=0.25,
        backbone="vgg16", weights="none", image_size=32, head_epochs=5, fine_tune_epochs=1,
    )  # fmt: skip
    runs = os.listdir(kfp_local)
    assert len(runs) == 1 and runs[0].startswith("kftransfer-")
    splits = os.path.join(kfp_local, runs[0], "split-data", "splits")
    assert sorted(os.listdir(splits))[0] == "labels.json"
    features = os.path.join(kfp_local, runs[0], "extract-bottlenecks", "features")
    assert json.load(open(os.path.join(features, "manifest.json")))["dim"] == 512
    model = os.path.join(kfp_local, runs[0], "fine-tune", "model", "model.keras")
    assert os.path.getsize(model) > 0
