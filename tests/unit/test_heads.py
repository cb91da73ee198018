"""The head: learns a learnable task, not a shuffled one; early stopping; class weights."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kftransfer.components.core import shards
from kftransfer.components.core.classifier import to_probabilities
from kftransfer.components.core.config import HeadConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.heads import (
    build_head,
    features_dataset,
    train_head,
    train_head_stage,
    train_statistics,
)
from kftransfer.components.core.training import StageOutputs

FAST = HeadConfig(head_epochs=30, head_patience=5, head_normalize=True)


def test_head_learns_the_generated_task(learnable):
    result = train_head(learnable["features"], FAST)
    summary = result.summary()
    assert summary["val_accuracy"] >= 0.9
    assert 1 <= summary["best_epoch"] <= summary["epochs"] <= 30
    best = int(summary["best_epoch"]) - 1
    assert (
        summary["val_loss"] == min(result.history["val_loss"]) == result.history["val_loss"][best]
    )


def test_shuffled_labels_stay_near_chance(learnable, tmp_path):
    shuffled = str(tmp_path / "features")
    shutil.copytree(learnable["features"], shuffled)
    manifest = shards.read_manifest(shuffled)
    rng = np.random.default_rng(0)
    for info in manifest["splits"].values():
        for entry in info["shards"]:
            arrays = shards.read_shard(shuffled, entry)
            arrays["labels"] = rng.integers(0, 3, len(arrays["labels"])).astype(np.int32)
            data = shards.encode_npz(**arrays)
            Path(os.path.join(shuffled, entry["file"])).write_bytes(data)
            entry["sha256"] = __import__("hashlib").sha256(data).hexdigest()
    Path(os.path.join(shuffled, "manifest.json")).write_text(json.dumps(manifest))
    accuracy = train_head(shuffled, FAST).summary()["val_accuracy"]
    assert accuracy < 0.6  # chance is 1/3; the real labels reach >= 0.9


def test_two_classes_get_a_sigmoid_and_probabilities_of_two_columns():
    model = build_head(8, 2, HeadConfig(head_units="4,3", head_normalize=True))
    assert model.output_shape == (None, 1)
    assert [layer.name for layer in model.layers[1:]] == [
        "head_normalize", "head_dense_0", "head_dropout_0",
        "head_dense_1", "head_dropout_1", "head_output",
    ]  # fmt: skip
    np.testing.assert_allclose(to_probabilities(np.array([[0.2]])), [[0.8, 0.2]])
    assert build_head(8, 5, HeadConfig(head_units="")).output_shape == (None, 5)


def test_train_statistics_and_balanced_class_weights(learnable):
    features, labels = shards.load_split(learnable["features"], "train")
    statistics = train_statistics(learnable["features"], 3)
    np.testing.assert_allclose(statistics.mean, features.astype(np.float64).mean(0), rtol=1e-6)
    variance = features.astype(np.float64).var(0)
    floored = np.maximum(variance, 0.01 * variance.mean())  # nearly dead features are floored
    np.testing.assert_allclose(statistics.variance, floored, rtol=1e-6, atol=1e-12)
    assert (statistics.variance > variance).sum() > 0
    counts = np.bincount(labels, minlength=3)
    assert statistics.balanced_class_weights() == pytest.approx(
        {c: len(labels) / (3 * counts[c]) for c in range(3)}
    )
    config = HeadConfig(head_epochs=3, class_weight="balanced", head_normalize=True)
    assert len(train_head(learnable["features"], config).history["loss"]) == 3


def test_the_head_standardises_its_input(learnable):
    model = train_head(learnable["features"], HeadConfig(head_epochs=1, head_normalize=True)).model
    features, _ = shards.load_split(learnable["features"], "train")
    normalize = model.get_layer("head_normalize")
    standardised = np.asarray(normalize(features.astype(np.float32)))
    np.testing.assert_allclose(standardised.mean(0), 0, atol=1e-3)
    assert "head_normalize" not in [layer.name for layer in build_head(8, 3, HeadConfig()).layers]


def test_streamed_features_equal_in_memory_ones(learnable, monkeypatch):
    in_memory = list(features_dataset(learnable["features"], "train", 7))
    monkeypatch.setattr("kftransfer.components.core.heads.IN_MEMORY_BYTES", 0)
    streamed = list(features_dataset(learnable["features"], "train", 7))
    assert [len(b[1]) for b in streamed] == [len(b[1]) for b in in_memory]
    np.testing.assert_array_equal(
        np.concatenate([b[0] for b in streamed]), np.concatenate([b[0] for b in in_memory])
    )
    shuffled = list(features_dataset(learnable["features"], "train", 7, shuffle_seed=1))
    labels = np.concatenate([b[1] for b in shuffled])
    assert sorted(labels.tolist()) == sorted(np.concatenate([b[1] for b in in_memory]).tolist())


def test_bad_head_settings_are_refused():
    with pytest.raises(UserError, match="--head-units '256,x'"):
        HeadConfig(head_units="256,x")
    with pytest.raises(UserError, match="--class-weight .auto.: use none or balanced"):
        HeadConfig(class_weight="auto")


def test_a_head_that_diverges_from_its_first_epoch_is_one_clear_error(learnable, tmp_path):
    # Before: the step kept a NaN head and published val_loss NaN, which fails a cluster's
    # launcher (rule metadata-values) and left nothing to fine-tune from.
    config = HeadConfig(head_epochs=3, head_learning_rate=1e30)
    outputs = StageOutputs(str(tmp_path / "head"), str(tmp_path / "curves.html"))
    with pytest.raises(UserError) as raised:
        train_head_stage(learnable["features"], config, outputs)
    assert str(raised.value) == (
        "head training diverged (loss nan, val_loss nan after 1 epoch), leaving no usable "
        "head: lower --head-learning-rate (now 1e+30)"
    )
