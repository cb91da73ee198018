"""--backbones: the head that validates best wins, with the features it was trained on."""

import json
from pathlib import Path

import pytest

from kftransfer.components.core.backbone_choice import choose_backbone
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.layout import FeatureSpec, read_stage_summary


def features_folder(root: Path, backbone: str) -> tuple[str, str]:
    """A features folder (manifest + one shard's bytes); returns (path, its cache key)."""
    spec = FeatureSpec(backbone, f"sha-{backbone}", 32, "avg", "tf", "", "float16", "2")
    folder = root / f"features-{backbone}"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "00000.npz").write_bytes(backbone.encode())
    manifest = {**spec.to_json(), "dim": 8, "labels": ["a", "b"], "splits": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return str(folder), spec.cache_key()


def head_folder(root: Path, backbone: str, key: str, accuracy: float, loss: float) -> str:
    folder = root / f"head-{backbone}"
    folder.mkdir()
    (folder / "model.keras").write_bytes(f"model of {backbone}".encode())
    summary = {"val_accuracy": accuracy, "val_loss": loss, "epochs": 7.0, "backbone": backbone,
               "features_key": key}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    return str(folder)


@pytest.fixture
def candidates(tmp_path):
    scores = {"vgg16": (0.80, 0.5), "resnet50": (0.90, 0.4), "mobilenet": (0.90, 0.3)}
    features, heads = [], []
    for backbone, (accuracy, loss) in scores.items():
        path, key = features_folder(tmp_path, backbone)
        features.append(path)
        heads.append(head_folder(tmp_path, backbone, key, accuracy, loss))
    return heads, features


def test_best_validation_accuracy_then_loss_wins_with_its_own_features(candidates, tmp_path):
    heads, features = candidates
    out_head, out_features = tmp_path / "head", tmp_path / "features"
    # the features listed in another order than the heads: paired by content, not position
    choice = choose_backbone(heads, features[::-1], str(out_head), str(out_features))
    assert choice["chosen_backbone"] == "mobilenet"  # ties resnet50 on accuracy, lower loss
    assert [c["backbone"] for c in choice["backbone_candidates"]] == [
        "vgg16", "resnet50", "mobilenet",
    ]  # fmt: skip
    assert [c["chosen"] for c in choice["backbone_candidates"]] == [False, False, True]
    assert choice["backbone_1_val_accuracy"] == 0.90
    assert (out_head / "model.keras").read_bytes() == b"model of mobilenet"
    assert (out_features / "train" / "00000.npz").read_bytes() == b"mobilenet"
    manifest = json.loads((out_features / "manifest.json").read_text())
    assert manifest["backbone"] == "mobilenet"
    recorded = read_stage_summary(str(out_head))["backbones"]  # for the report
    assert [c["val_accuracy"] for c in recorded] == [0.80, 0.90, 0.90]
    assert read_stage_summary(heads[2])["val_loss"] == 0.3  # the candidate itself untouched


def test_a_head_without_its_features_is_a_clear_error(candidates, tmp_path):
    heads, features = candidates
    with pytest.raises(UserError, match="head .*head-vgg16 was trained on features that are not"):
        choose_backbone(heads, features[1:], str(tmp_path / "h"), str(tmp_path / "f"))
