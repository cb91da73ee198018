"""Training machinery shared by the head and fine-tuning.

The trained result, resumable early stopping, epoch logs, optimizers and checkpoint folders.
"""

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np

from kftransfer.components.core import layout, storage
from kftransfer.components.core.classifier import accuracy_name
from kftransfer.components.core.layout import BEST_WEIGHTS, LAST_WEIGHTS, STATE_FILE
from kftransfer.components.core.progress import LOGGER


@dataclass
class TrainResult:
    """A trained model and how it got there."""

    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int | None
    epoch_seconds: list[float]
    baseline: dict[str, float] | None = None

    def summary(self) -> dict[str, float]:
        """Validation accuracy and loss of the kept weights, epochs run, mean epoch seconds.

        The kept weights are the best epoch's, or the starting weights (epoch 0) when no
        epoch beat the `baseline`.
        """
        accuracy = f"val_{accuracy_name(self.model)}"
        epochs = len(self.history.get("loss", []))
        if self.best_epoch == 0 and self.baseline:
            kept = {"val_accuracy": self.baseline[accuracy], "val_loss": self.baseline["val_loss"]}
        else:
            best = (self.best_epoch or epochs) - 1
            kept = {
                "val_accuracy": self.history[accuracy][best],
                "val_loss": self.history["val_loss"][best],
            }
        best_epoch = self.best_epoch if self.best_epoch is not None else epochs
        summary = {**kept, "epochs": float(epochs), "best_epoch": float(best_epoch)}
        if self.epoch_seconds:
            summary["seconds_per_epoch"] = float(np.mean(self.epoch_seconds))
        return summary

    def save(self, stage_uri: str, config) -> None:
        """Writes the stage folder: the model, its history and the stage's config."""
        from kftransfer.components.core.model_io import save_model

        save_model(self.model, layout.stage_model(stage_uri))
        layout.write_stage_records(stage_uri, self.history, config.to_dict())


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.9):
    """A Keras optimizer by name (`sgd` uses `momentum`)."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum)
    optimizers = {
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "adamw": keras.optimizers.AdamW,
    }
    return optimizers[name](learning_rate)


class ResumableTraining(keras.callbacks.Callback):
    """Early stopping with best-weights restore, checkpointed every epoch so it can resume.

    After each epoch the model's weights (with the optimizer's state), the best weights
    so far and a state file (epochs done, best validation loss, patience used, history)
    are written to `checkpoint_uri` (local or gs://; the state file last, as the commit).
    `resume()` before `fit` restores them and returns the epoch to start from, so a
    preempted pod that KFP retries loses at most the epoch in flight (Keras'
    BackupAndRestore semantics, plus early stopping's state). The checkpoint is only
    used if its `fingerprint` (a hash of the inputs and settings) matches; it is deleted
    after a successful run, so a later run starts fresh.

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
        model.optimizer.build(model.trainable_variables)
        with storage.local_path(storage.join(self.uri, LAST_WEIGHTS)) as path:
            model.load_weights(path)
        self.state = state
        LOGGER.info("resuming from %s after epoch %d", self.uri, state["epoch"])
        return state["epoch"]

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
        self._save_weights(BEST_WEIGHTS)

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
        if (
            not diverged
            and loss is not None
            and (self.state["best"] is None or loss < self.state["best"])
        ):
            self.state.update(best=float(loss), best_epoch=epoch + 1, wait=0)
            self._save_weights(BEST_WEIGHTS)
        else:
            self.state["wait"] += 1
        self._save_weights(LAST_WEIGHTS)
        storage.write_json(storage.join(self.uri, STATE_FILE), self.state)
        if self.state["wait"] >= self.patience:
            LOGGER.info("early stopping: no better val_loss for %d epochs", self.patience)
            self.model.stop_training = True

    def finish(self, model: keras.Model) -> None:
        """Restores the best weights into `model` and deletes the checkpoint."""
        best = storage.join(self.uri, BEST_WEIGHTS)
        if self.state["best_epoch"] is not None and self.state["best_epoch"] != self.state["epoch"]:
            with storage.local_path(best) as path:
                model.load_weights(path)
            if self.state["best_epoch"] == 0:
                LOGGER.warning("no epoch beat the starting val_loss: kept the starting weights")
            else:
                LOGGER.info("restored the best weights (epoch %d)", self.state["best_epoch"])
        for name in (STATE_FILE, LAST_WEIGHTS, BEST_WEIGHTS):
            storage.remove(storage.join(self.uri, name))

    def _save_weights(self, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, name)
            self.model.save_weights(path)
            storage.upload_file(path, storage.join(self.uri, name))


class EpochLogger(keras.callbacks.Callback):
    """Logs one line per epoch: metrics, seconds and examples/s.

    Args:
        what: the stage's name in the log.
        examples: training examples per epoch.
        epochs: the planned number of epochs.
    """

    def __init__(self, what: str, examples: int, epochs: int):
        super().__init__()
        self.what, self.examples, self.epochs = what, examples, epochs
        self._start = 0.0
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:  # noqa: ARG002
        """Starts the epoch's clock (Keras' callback signature)."""
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Logs the epoch's metrics and speed."""
        seconds = time.perf_counter() - self._start
        self.seconds.append(seconds)
        metrics = " ".join(f"{_short(k)} {v:.4f}" for k, v in sorted((logs or {}).items()))
        speed = self.examples / max(seconds, 1e-9)
        LOGGER.info(
            "%s epoch %d/%d: %s (%.1f s, %.0f examples/s)",
            *(self.what, epoch + 1, self.epochs, metrics, seconds, speed),
        )


@contextlib.contextmanager
def quiet_unknown_length() -> Iterator[None]:
    """Silences Keras' warning that a dataset of unknown length "ran out of data".

    Our datasets drop undecodable files, so their length is unknown until the first
    epoch ends; Keras then warns on every epoch end although nothing is wrong.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        yield


def _short(metric: str) -> str:
    """`val_sparse_categorical_accuracy` -> `val_accuracy` (for log lines)."""
    return metric.replace("sparse_categorical_accuracy", "accuracy").replace(
        "binary_accuracy", "accuracy"
    )


def fit(
    model: keras.Model,
    train,
    validation,
    epochs: int,
    initial_epoch: int,
    callbacks,
    class_weight: dict | None = None,
) -> None:
    """`model.fit` as both stages run it: no progress bars (EpochLogger logs), our shuffling."""
    with quiet_unknown_length():
        model.fit(
            train,
            validation_data=validation,
            epochs=epochs,
            initial_epoch=initial_epoch,
            class_weight=class_weight,
            callbacks=callbacks,
            shuffle=False,  # the datasets shuffle themselves
            verbose=0,
        )


def tensorboard_callbacks(uri: str) -> list[keras.callbacks.Callback]:
    """A TensorBoard callback logging to `uri` (gs:// works on real GCS), or none."""
    return [keras.callbacks.TensorBoard(log_dir=uri)] if uri else []


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


@dataclass(frozen=True)
class StageOutputs:
    """Where a training stage writes its results, checkpoints and TensorBoard logs.

    Attributes:
        stage_uri: the stage folder (model, history, config).
        curves_uri: the HTML page of the training curves.
        checkpoint_uri: this task's checkpoint folder ('' for none).
        tensorboard_uri: TensorBoard log folder ('' for none).
    """

    stage_uri: str
    curves_uri: str
    checkpoint_uri: str = ""
    tensorboard_uri: str = ""

    @classmethod
    def of(cls, stage, curves, checkpoint_base: str, tensorboard_uri: str, name: str):
        """The outputs of a step from its KFP artifacts (anything with `.path` and `.uri`)."""
        checkpoint = checkpoint_folder(checkpoint_base, stage.uri, name)
        return cls(stage.path, curves.path, checkpoint, tensorboard_uri)

    def save(self, result: TrainResult, config, title: str) -> dict[str, float]:
        """Writes the stage folder and its curves page; returns the result's summary."""
        from kftransfer.components.core.plots import curves_page

        result.save(self.stage_uri, config)
        storage.write_text(self.curves_uri, curves_page(result.history, title, result.best_epoch))
        return result.summary()


def fingerprint_of(*parts: object) -> str:
    """A short hash of JSON-able parts (inputs and settings of a training run)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
