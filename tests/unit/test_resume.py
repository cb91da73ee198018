"""Resume after preemption: an interrupted run continues after its last completed epoch."""

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from kftransfer.components.core import checkpoints, storage
from kftransfer.components.core import fine_tune as ft
from kftransfer.components.core.config import FineTuneConfig, HeadConfig
from kftransfer.components.core.heads import train_head, train_head_stage
from kftransfer.components.core.layout import stage_model
from kftransfer.components.core.model_io import save_model
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.training import StageOutputs


class Preempted(Exception):
    """Stands for the pod being killed."""


class WeightsAfter(keras.callbacks.Callback):
    """Keeps the model's weights at the end of epoch `epoch` (1-based)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch, self.weights = epoch, None

    def on_epoch_end(self, epoch, logs=None):  # noqa: ARG002 - Keras' callback signature
        if epoch + 1 == self.epoch:
            self.weights = [w.copy() for w in self.model.get_weights()]


class PreemptAfter(WeightsAfter):
    """Kills the run at the end of epoch `epoch` (1-based), after the checkpoint was written."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if epoch + 1 == self.epoch:
            raise Preempted()


class Record(keras.callbacks.Callback):
    """Records the epochs run and the weights at the start of training."""

    def __init__(self):
        super().__init__()
        self.epochs, self.start_weights = [], None

    def on_train_begin(self, logs=None):  # noqa: ARG002 - Keras' callback signature
        self.start_weights = [w.copy() for w in self.model.get_weights()]

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ARG002 - Keras' callback signature
        self.epochs.append(epoch + 1)


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def run_interrupted_then_resumed(train, checkpoint: str, k: int):
    preempt, record = PreemptAfter(k), Record()
    with pytest.raises(Preempted):
        train(checkpoint, [preempt])
    state = json.loads(Path(os.path.join(checkpoint, "state.json")).read_text())
    assert state["epoch"] == k and len(state["history"]["loss"]) == k
    result = train(checkpoint, [record])
    assert record.epochs[0] == k + 1
    assert_same_weights(record.start_weights, preempt.weights)
    assert result.history["loss"][:k] == state["history"]["loss"]
    final = json.loads(Path(checkpoint, "state.json").read_text())  # kept for the stage
    assert final["ended"] and final["epoch"] == len(result.history["loss"])
    return result, record


def test_head_resumes_after_the_last_completed_epoch(learnable, tmp_path):
    config = HeadConfig(head_epochs=6, head_patience=100)

    def train(checkpoint, callbacks):
        return train_head(learnable["features"], config, checkpoint, callbacks=callbacks)

    result, record = run_interrupted_then_resumed(train, str(tmp_path / "ckpt"), k=3)
    assert record.epochs == [4, 5, 6] and len(result.history["loss"]) == 6


def test_fine_tune_resumes_after_the_last_completed_epoch(learnable, tmp_path):
    head = train_head(learnable["features"], HeadConfig(head_epochs=5)).model
    head_path = save_model(head, str(tmp_path / "head.keras"))
    config = FineTuneConfig(fine_tune_epochs=3, fine_tune_patience=100, fine_tune_batch_size=16)

    def train(checkpoint, callbacks):
        return ft.fine_tune(learnable["split"], learnable["features"], head_path, config,
                            checkpoint, callbacks=callbacks)  # fmt: skip

    result, record = run_interrupted_then_resumed(train, str(tmp_path / "ckpt"), k=1)
    assert record.epochs == [2, 3]
    # measured by the first attempt, kept in the checkpoint for the summary
    assert 0 <= result.initial_val_accuracy <= 1


def test_a_checkpoint_of_other_settings_is_not_resumed(learnable, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(LOGGER, "propagate", True)  # to caplog, whatever setup_logging did
    checkpoint = str(tmp_path / "ckpt")
    with pytest.raises(Preempted):
        train_head(learnable["features"], HeadConfig(head_epochs=4), checkpoint,
                   callbacks=[PreemptAfter(2)])  # fmt: skip
    record = Record()
    other = HeadConfig(head_epochs=4, head_learning_rate=5e-4)
    train_head(learnable["features"], other, checkpoint, callbacks=[record])
    assert record.epochs[0] == 1
    assert "from other inputs or settings: starting fresh" in caplog.text


def test_a_kill_after_the_weights_before_the_state_resumes_the_committed_epoch(
    learnable, tmp_path, monkeypatch
):
    """Before: epoch 3's weights overwrote epoch 2's, the state still said 2 epochs done, and
    the retry trained epoch 3 again from epoch 3's weights (4 epochs of updates in 3)."""
    checkpoint = str(tmp_path / "ckpt")
    config = HeadConfig(head_epochs=5, head_patience=100)
    write_json = checkpoints.storage.write_json

    def killed_writing_state(uri, value):
        if value.get("epoch") == 3:
            raise Preempted()  # the pod dies with epoch 3's weights written, its state not
        write_json(uri, value)

    monkeypatch.setattr(checkpoints.storage, "write_json", killed_writing_state)
    committed = WeightsAfter(2)
    with pytest.raises(Preempted):
        train_head(learnable["features"], config, checkpoint, callbacks=[committed])
    monkeypatch.setattr(checkpoints.storage, "write_json", write_json)
    state = json.loads(Path(checkpoint, "state.json").read_text())
    assert state["epoch"] == 2 and state["files"]["last"] == "last-2.weights.h5"
    assert "last-3.weights.h5" in os.listdir(checkpoint)  # written, never committed
    record = Record()
    result = train_head(learnable["features"], config, checkpoint, callbacks=[record])
    assert record.epochs == [3, 4, 5]
    assert_same_weights(record.start_weights, committed.weights)
    assert len(result.history["loss"]) == 5
    checkpoints.discard(checkpoint)  # what the stage does once saved
    assert not os.path.exists(checkpoint)  # every file, named by a state or not


def test_a_retry_killed_after_training_restores_the_result_and_the_stage_deletes_it(
    learnable, tmp_path, monkeypatch
):
    """Before: the checkpoint was deleted when `fit` ended, before the stage was saved, so
    a pod killed while saving it (or a failed upload) trained the whole stage again."""
    config = HeadConfig(head_epochs=8, head_patience=2)
    checkpoint = str(tmp_path / "ckpt")
    outputs = StageOutputs(str(tmp_path / "head"), str(tmp_path / "curves.html"), checkpoint)
    write_text = storage.write_text

    def killed_saving_the_curves(uri, text):
        if uri == outputs.curves_uri:
            raise Preempted()
        write_text(uri, text)

    monkeypatch.setattr(storage, "write_text", killed_saving_the_curves)
    with pytest.raises(Preempted):
        train_head_stage(learnable["features"], config, outputs)
    monkeypatch.setattr(storage, "write_text", write_text)
    state = json.loads(Path(checkpoint, "state.json").read_text())
    assert state["ended"] and state["epoch"] < 8  # early-stopped, then killed
    first = keras.saving.load_model(stage_model(outputs.stage_uri)).get_weights()

    record = Record()
    retried = train_head(learnable["features"], config, checkpoint, callbacks=[record])
    assert record.epochs == []  # nothing trained again
    assert_same_weights(retried.model.get_weights(), first)
    assert retried.history == state["history"] and retried.best_epoch == state["best_epoch"]

    summary = train_head_stage(learnable["features"], config, outputs)
    assert summary["epochs"] == state["epoch"]
    assert not os.path.exists(checkpoint)  # deleted once the stage was saved


def test_discard_deletes_states_first_and_a_state_without_its_files_starts_fresh(
    learnable, tmp_path, monkeypatch
):
    checkpoint = str(tmp_path / "ckpt")
    config = HeadConfig(head_epochs=2, head_patience=100)
    for trial in ("trial-0", "trial-1"):
        train_head(learnable["features"], config, f"{checkpoint}/{trial}")
    removed = []
    remove = storage.remove
    monkeypatch.setattr(storage, "remove", lambda uri: (removed.append(uri), remove(uri)))
    checkpoints.discard(checkpoint)
    assert [os.path.basename(u) for u in removed[:2]] == ["state.json"] * 2
    assert len(removed) > 2 and not os.path.exists(checkpoint)

    monkeypatch.setattr(storage, "remove", remove)
    train_head(learnable["features"], config, checkpoint)  # ended, then its weights lost:
    state = json.loads(Path(checkpoint, "state.json").read_text())
    os.remove(os.path.join(checkpoint, state["files"]["last"]))
    record = Record()
    train_head(learnable["features"], config, checkpoint, callbacks=[record])
    assert record.epochs == [1, 2]
