"""Checkpoints that let a preempted training step resume where it stopped.

`ResumableTraining` checkpoints every epoch (weights with the optimizer's state, the best
weights, early stopping's state) and resumes from them; `checkpoint_folder` gives each KFP
task its own folder, so a retry finds it and another run starts fresh.
"""

import hashlib
import json
import math
import os
import shutil
import tempfile

import keras

from kftransfer.components.core import listing, storage
from kftransfer.components.core.layout import BEST_WEIGHTS, LAST_WEIGHTS, STATE_FILE
from kftransfer.components.core.progress import LOGGER


class ResumableTraining(keras.callbacks.Callback):
    """Early stopping with best-weights restore, checkpointed every epoch so it can resume.

    After each epoch the model's weights (with the optimizer's state), the best weights
    so far and a state file (epochs done, best validation loss, patience used, history)
    are written to `checkpoint_uri` (local or gs://). The weight files are named by their
    epoch and the state file, written last, names the ones it commits: a kill between
    the two leaves files no state names, never a state with another epoch's weights (a
    retry would train that epoch twice, or restore a "best" that is not).
    `resume()` before `fit` restores them and returns the epoch to start from, so a
    preempted pod that KFP retries loses at most the epoch in flight (Keras'
    BackupAndRestore semantics, plus early stopping's state). When `fit` ends, the state
    says so (`ended`): a retry killed after training, while saving the stage, restores
    the result instead of training again. The checkpoint is only used if its
    `fingerprint` (a hash of the inputs and settings) matches. The stage deletes it once
    its outputs are saved (`discard`); a private one (no `checkpoint_uri`) goes at `finish`.

    Args:
        checkpoint_uri: where to checkpoint; empty for a private temp folder.
        fingerprint: identifies the training inputs and settings.
        patience: epochs without a better `val_loss` before stopping.
    """

    def __init__(self, checkpoint_uri: str, fingerprint: str, patience: int):
        super().__init__()
        self._tmp = None if checkpoint_uri else tempfile.TemporaryDirectory(prefix="kft-ckpt-")
        self.uri = checkpoint_uri or self._tmp.name
        self.fingerprint, self.patience = fingerprint, patience
        self.state = {
            "fingerprint": fingerprint,
            "epoch": 0,
            "best": None,
            "best_epoch": None,
            "wait": 0,
            "history": {},
            "files": {},  # "last"/"best" -> the weight file of the epoch committed
        }

    def resume(self, model: keras.Model) -> int:
        """Loads a matching checkpoint into `model`; returns the number of epochs done."""
        state_uri = storage.join(self.uri, STATE_FILE)
        if not storage.exists(state_uri):
            return 0
        state = storage.read_json(state_uri)
        if state.get("fingerprint") != self.fingerprint:
            LOGGER.warning(
                "checkpoint at %s is from other inputs or settings: starting fresh", self.uri
            )
            return 0
        if "files" not in state:  # written by an earlier version, whose files were not named
            LOGGER.warning("checkpoint at %s is of an earlier version: starting fresh", self.uri)
            return 0
        missing = [n for n in state["files"].values() if not storage.exists(self._file(n))]
        if missing:  # a kill while `discard` deleted them; the state goes first, but GCS...
            LOGGER.warning("checkpoint at %s lacks %s: starting fresh", self.uri, missing[0])
            return 0
        model.optimizer.build(model.trainable_variables)
        with storage.local_path(self._file(state["files"]["last"])) as path:
            model.load_weights(path)
        self.state = state
        if self.ended:
            LOGGER.info("training at %s had ended after epoch %d: kept", self.uri, state["epoch"])
        else:
            LOGGER.info("resuming from %s after epoch %d", self.uri, state["epoch"])
        return state["epoch"]

    @property
    def ended(self) -> bool:
        """Whether a `fit` ran to its end (all epochs, early stopping or divergence)."""
        return bool(self.state.get("ended"))

    def set_baseline(self, model: keras.Model, scores: dict[str, float]) -> None:
        """Counts the untrained model as epoch 0: no epoch worse than it will be kept.

        Args:
            model: the compiled, untrained model.
            scores: its validation scores (`model.evaluate(..., return_dict=True)`).
        """
        self.set_model(model)
        model.optimizer.build(model.trainable_variables)  # so the file holds its state too
        baseline = {f"val_{name}": float(value) for name, value in scores.items()}
        self.state.update(best=baseline["val_loss"], best_epoch=0, wait=0, baseline=baseline)
        self.state["files"]["best"] = self._save_weights(BEST_WEIGHTS, 0)

    @property
    def history(self) -> dict[str, list[float]]:
        """Every epoch's logs so far, including epochs before a resume."""
        return self.state["history"]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Records the epoch, keeps the best weights, checkpoints, and stops when patient enough."""
        logs = logs or {}
        for name, value in logs.items():
            self.state["history"].setdefault(name, []).append(float(value))
        self.state["epoch"] = epoch + 1
        loss = logs.get("val_loss")
        diverged = not math.isfinite(logs.get("loss", 0.0))
        if diverged:
            LOGGER.warning(
                "training diverged (loss %s) at epoch %d: stopping", logs["loss"], epoch + 1
            )
            self.model.stop_training = True
        committed = dict(self.state["files"])
        if (
            not diverged
            and loss is not None
            and (self.state["best"] is None or loss < self.state["best"])
        ):
            self.state.update(best=float(loss), best_epoch=epoch + 1, wait=0)
            self.state["files"]["best"] = self._save_weights(BEST_WEIGHTS, epoch + 1)
        else:
            self.state["wait"] += 1
        self.state["files"]["last"] = self._save_weights(LAST_WEIGHTS, epoch + 1)
        storage.write_json(self._file(STATE_FILE), self.state)  # the commit
        for name in set(committed.values()) - set(self.state["files"].values()):
            storage.remove(self._file(name))
        if self.state["wait"] >= self.patience:
            LOGGER.info("early stopping: no better val_loss for %d epochs", self.patience)
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:  # noqa: ARG002 - Keras' signature
        """Commits that training ended (not called when the pod is killed mid-`fit`)."""
        if self.state["epoch"] and not self.ended:
            self.state["ended"] = True
            storage.write_json(self._file(STATE_FILE), self.state)

    def finish(self, model: keras.Model) -> None:
        """Restores the best weights into `model`; deletes a private checkpoint.

        A checkpoint at `checkpoint_uri` stays until the stage's outputs are saved
        (`discard`), so a retry killed in between restores the result.
        """
        if self.state["best_epoch"] is not None and self.state["best_epoch"] != self.state["epoch"]:
            with storage.local_path(self._file(self.state["files"]["best"])) as path:
                model.load_weights(path)
            if self.state["best_epoch"] == 0:
                LOGGER.warning("no epoch beat the starting val_loss: kept the starting weights")
            else:
                LOGGER.info("restored the best weights (epoch %d)", self.state["best_epoch"])
        if self._tmp is not None:
            self._tmp.cleanup()

    def _file(self, name: str) -> str:
        return storage.join(self.uri, name)

    def _save_weights(self, pattern: str, epoch: int) -> str:
        """Writes the model's weights as `pattern` of `epoch`; returns the file's name."""
        name = pattern.format(epoch=epoch)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, name)
            self.model.save_weights(path)
            storage.upload_file(path, self._file(name))
        return name


def discard(checkpoint_uri: str) -> None:
    """Deletes a stage's checkpoint folder (its sweep trials' too), state files first.

    Called once the stage's outputs are saved. A kill midway leaves weight files no state
    names, which `resume` never loads; a state naming deleted files starts fresh.
    """
    if not checkpoint_uri:
        return
    files = [info.uri for info in listing.list_files_if_any(checkpoint_uri)]
    for uri in sorted(files, key=lambda u: storage.basename(u) != STATE_FILE):
        storage.remove(uri)
    if not storage.is_gcs(checkpoint_uri):
        shutil.rmtree(checkpoint_uri, ignore_errors=True)  # the emptied folders


def checkpoint_folder(checkpoint_uri: str, artifact_uri: str, stage: str) -> str:
    """`checkpoint_uri/<hash of the task's output artifact URI>/stage`, or "" without a base.

    A KFP retry of a task writes the same output artifact, so it finds its checkpoint;
    another run (or a cached step's rerun) has another artifact URI and starts fresh. The
    run id is deliberately not an input: it would defeat KFP's step cache.
    """
    if not checkpoint_uri:
        return ""
    return storage.join(
        checkpoint_uri, hashlib.sha256(artifact_uri.encode()).hexdigest()[:16], stage
    )


def fingerprint_of(*parts: object) -> str:
    """A short hash of JSON-able parts (inputs and settings of a training run)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
