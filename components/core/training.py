"""Training machinery shared by the head and fine-tuning.

The trained result and where a stage writes it, epoch logs, optimizers, `fit` as both
stages run it. Checkpoints and resuming are in `checkpoints.py`.
"""

import contextlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np

from kftransfer.components.core import layout, storage
from kftransfer.components.core.checkpoints import checkpoint_folder, discard
from kftransfer.components.core.classifier import accuracy_name
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

    def save(self, stage_uri: str, config, extra: dict | None = None) -> dict:
        """Writes the stage folder (model, history, config, summary); returns the summary.

        Args:
            stage_uri: the stage folder.
            config: the stage's hyper-parameters.
            extra: more numbers for the summary.
        """
        from kftransfer.components.core.model_io import save_model

        summary = {**self.summary(), **(extra or {})}
        save_model(self.model, layout.stage_model(stage_uri))
        layout.write_stage_records(stage_uri, self.history, config.to_dict(), summary)
        return summary


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

    def save(self, result: TrainResult, config, title: str, extra: dict | None = None) -> dict:
        """Writes the stage folder and its curves page, then deletes the stage's checkpoint.

        Returns:
            The stage's summary.
        """
        from kftransfer.components.core.plots import curves_page

        summary = result.save(self.stage_uri, config, extra)
        storage.write_text(self.curves_uri, curves_page(result.history, title, result.best_epoch))
        discard(self.checkpoint_uri)
        return summary
