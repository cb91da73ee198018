"""Hyper-parameters of every step: frozen dataclasses, the one source of truth.

Components, the pipeline's parameters and the CLI's options all take their defaults
and help text from these classes. Each field carries its documentation in
`metadata["help"]`; `describe()` renders it.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kftransfer.components.core.errors import UserError


def _param(default: Any, help: str) -> Any:  # noqa: A002 - mirrors click's keyword
    return field(default=default, metadata={"help": help})


def describe(config_cls: type) -> dict[str, str]:
    """Maps each field of a config dataclass to its help text (with its default)."""
    return {
        f.name: f"{f.metadata.get('help', '')} [default: {f.default}]"
        for f in dataclasses.fields(config_cls)
    }


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


class _Config:
    """Base of the config dataclasses: coerces numeric types, then validates."""

    def __post_init__(self):
        """Coerces whole floats to int fields (KFP may deliver 3.0 for 3), then validates."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type is int and isinstance(value, float) and value.is_integer():
                object.__setattr__(self, f.name, int(value))
            elif f.type is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        self.validate()

    def validate(self) -> None:
        """Raises UserError naming the first impossible value; nothing by default."""


@dataclass(frozen=True)
class SplitConfig(_Config):
    """How images are validated and assigned to train / validation / test."""

    val_fraction: float = _param(0.15, "Fraction of each class assigned to validation.")
    test_fraction: float = _param(0.15, "Fraction of each class assigned to test.")
    seed: int = _param(0, "Seed of the content-hash split; changing it reshuffles every split.")
    min_images_per_class: int = _param(
        10, "Fewest valid images a class may have; fewer is an error."
    )
    min_image_side: int = _param(16, "Images with a side shorter than this (px) are skipped.")
    max_image_pixels: int = _param(
        50_000_000, "Images with more pixels are skipped as decompression bombs."
    )

    def validate(self) -> None:
        """Rejects impossible values with a message naming the option."""
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0 <= value < 1, f"--{name.replace('_', '-')} must be in [0, 1), got {value}")
        _check(
            self.val_fraction + self.test_fraction < 1,
            "--val-fraction + --test-fraction must be < 1: nothing would be left to train on",
        )
        _check(self.min_images_per_class >= 1, "--min-images-per-class must be >= 1")
        _check(self.min_image_side >= 1, "--min-image-side must be >= 1")
        _check(self.max_image_pixels >= 1, "--max-image-pixels must be >= 1")


@dataclass(frozen=True)
class ExtractConfig(_Config):
    """Which backbone computes the bottleneck features, and how."""

    backbone: str = _param(
        "mobilenet_v2",
        "Backbone: vgg16, resnet50, inception_v3, mobilenet, mobilenet_v2, efficientnet_b0, "
        "densenet121, or the URI of a complete .keras model (bring your own).",
    )
    weights: str = _param(
        "imagenet",
        "imagenet (Keras download), none (random; tests, air-gapped), or the URI of a "
        ".weights.h5/.keras file for the backbone.",
    )
    image_size: int = _param(0, "Input size in pixels; 0 = the backbone's default.")
    pooling: str = _param("avg", "Feature pooling: avg, max, or flatten (e.g. VGG16's 4x4x512).")
    batch_size: int = _param(32, "Images per forward pass.")
    feature_dtype: str = _param("float16", "Stored feature dtype: float16 or float32.")
    feature_layer: str = _param(
        "", "Bring-your-own backbone: its feature layer (default: the last pooling layer)."
    )
    preprocessing: str = _param(
        "", "Bring-your-own backbone: caffe, tf, torch or none (default tf)."
    )

    def validate(self) -> None:
        """Rejects impossible values with a message naming the option."""
        _check(
            self.pooling in ("avg", "max", "flatten"),
            f"--pooling {self.pooling!r}: use avg, max or flatten",
        )
        _check(
            self.feature_dtype in ("float16", "float32"), "--feature-dtype: use float16 or float32"
        )
        _check(self.batch_size >= 1, "--batch-size must be >= 1")
        _check(self.image_size >= 0, "--image-size must be >= 0 (0 = the backbone's default)")


OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")


@dataclass(frozen=True)
class HeadConfig(_Config):
    """The small classifier trained on cached features."""

    head_normalize: bool = _param(
        False,
        "Standardise features with the train split's mean and variance (inside the head); "
        "for backbones whose features are tiny, e.g. random weights.",
    )
    head_units: str = _param("256", "Hidden Dense widths, comma-separated ('' = linear head).")
    head_dropout: float = _param(0.5, "Dropout after each hidden layer.")
    head_optimizer: str = _param("adam", "adam, sgd (momentum 0.9), rmsprop or adamw.")
    head_learning_rate: float = _param(1e-3, "Learning rate of the head.")
    head_epochs: int = _param(50, "Most epochs; early stopping usually ends sooner.")
    head_batch_size: int = _param(64, "Feature rows per step.")
    head_patience: int = _param(5, "Epochs without a better validation loss before stopping.")
    class_weight: str = _param("none", "none, or balanced (weights inverse to class frequency).")
    seed: int = _param(0, "Seed of the split, initialisation, dropout and shuffling.")

    def validate(self) -> None:
        """Rejects impossible values with a message naming the option."""
        _check(self.head_optimizer in OPTIMIZERS, f"--head-optimizer: use one of {OPTIMIZERS}")
        _check(0 <= self.head_dropout < 1, "--head-dropout must be in [0, 1)")
        _check(self.class_weight in ("none", "balanced"), "--class-weight: use none or balanced")
        _check(
            self.head_epochs >= 1 and self.head_batch_size >= 1,
            "--head-epochs and --head-batch-size must be >= 1",
        )
        _check(self.head_learning_rate > 0, "--head-learning-rate must be > 0")
        try:
            units = self.hidden_units
        except ValueError:
            units = [0]
        _check(
            all(u > 0 for u in units),
            f"--head-units {self.head_units!r}: give widths like 256 or 512,128",
        )

    @property
    def hidden_units(self) -> list[int]:
        """The hidden layer widths as integers."""
        return [int(u) for u in self.head_units.replace(" ", "").split(",") if u]


@dataclass(frozen=True)
class FineTuneConfig(_Config):
    """Fine-tuning the top of the backbone together with the trained head."""

    unfreeze: str = _param(
        "default",
        "Backbone layers to train: default (the backbone's own), top_n_layers=N, "
        "from_layer=NAME, after_layer=NAME, or all. BatchNorm layers stay frozen.",
    )
    fine_tune_optimizer: str = _param("adam", "adam, sgd (with --momentum), rmsprop or adamw.")
    fine_tune_learning_rate: float = _param(3e-5, "Learning rate: small, to keep the features.")
    momentum: float = _param(0.9, "SGD momentum.")
    fine_tune_epochs: int = _param(15, "Most epochs; early stopping may end sooner.")
    fine_tune_batch_size: int = _param(32, "Images per step (per replica on several GPUs).")
    fine_tune_patience: int = _param(4, "Epochs without a better validation loss before stopping.")
    augmentation: str = _param(
        "flip,translation=0.05",
        "Training-input augmentation: comma-separated flip, rotation=F, zoom=F, "
        "translation=F, contrast=F ('' = none).",
    )
    mixed_precision: str = _param("auto", "auto (on for GPUs that support it), on, or off.")
    seed: int = _param(0, "Seed of the split, initialisation, dropout and shuffling.")

    def validate(self) -> None:
        """Rejects impossible values with a message naming the option."""
        _check(
            self.fine_tune_optimizer in OPTIMIZERS,
            f"--fine-tune-optimizer: use one of {OPTIMIZERS}",
        )
        _check(
            self.mixed_precision in ("auto", "on", "off"), "--mixed-precision: use auto, on or off"
        )
        _check(self.fine_tune_learning_rate > 0, "--fine-tune-learning-rate must be > 0")
        _check(
            self.fine_tune_epochs >= 1 and self.fine_tune_batch_size >= 1,
            "--fine-tune-epochs and --fine-tune-batch-size must be >= 1",
        )


@dataclass(frozen=True)
class EvalConfig(_Config):
    """How the candidate is judged against the threshold and the production model."""

    min_accuracy: float = _param(0.0, "Fine-tuned test accuracy required to export.")
    baseline_tolerance: float = _param(
        0.01, "Test accuracy this far below the production model's still counts as good enough."
    )
    min_class_recall: float = _param(0.0, "Every class's test recall must reach this (0 = off).")
    top_k: int = _param(3, "k of the reported top-k accuracy.")
    misclassified_examples: int = _param(24, "Misclassified test images shown in the report.")

    def validate(self) -> None:
        """Rejects impossible values with a message naming the option."""
        for name in ("min_accuracy", "baseline_tolerance", "min_class_recall"):
            value = getattr(self, name)
            _check(0 <= value <= 1, f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        _check(self.top_k >= 1, "--top-k must be >= 1")
