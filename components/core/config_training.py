"""Hyper-parameters of the two training steps: the head on cached features, fine-tuning."""

from dataclasses import dataclass
from typing import ClassVar

from kftransfer.components.core.config_base import (
    SEED_HELP,
    Config,
    at_least,
    flag,
    param,
    range_problems,
)
from kftransfer.components.core.specs import parse_augmentation, parse_unfreeze, parse_units

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
SCHEDULES = ("constant", "cosine")
SCHEDULE_HELP = (
    "Learning-rate schedule: constant, or cosine (linear warmup, then a half cosine to 0 at "
    "the last planned epoch)."
)


def _recipe_problems(config: Config, prefix: str) -> list[str]:
    """A known schedule, warmup >= 0, label smoothing in [0, 1)."""
    found = []
    schedule = getattr(config, f"{prefix}_schedule")
    if schedule not in SCHEDULES:
        found.append(f"{flag(prefix + '_schedule')} {schedule!r}: use constant or cosine")
    if getattr(config, f"{prefix}_warmup_epochs") < 0:
        found.append(f"{flag(prefix + '_warmup_epochs')} must be >= 0")
    return found + range_problems(config, (f"{prefix}_label_smoothing",), 0, 1, closed=False)


@dataclass(frozen=True)
class HeadConfig(Config):
    """The small classifier trained on cached features."""

    TITLE: ClassVar[str] = "Head training"

    head_normalize: bool = param(
        False,
        "Standardise features with the train split's mean and variance (inside the head); "
        "for backbones whose features are tiny, e.g. random weights.",
    )
    head_units: str = param("256", "Hidden Dense widths, comma-separated ('' = linear head).")
    head_dropout: float = param(0.5, "Dropout after each hidden layer.")
    head_optimizer: str = param("adam", "adam, sgd (momentum 0.9), rmsprop or adamw.")
    head_learning_rate: float = param(1e-3, "Learning rate of the head.")
    head_epochs: int = param(50, "Most epochs; early stopping usually ends sooner.")
    head_batch_size: int = param(64, "Feature rows per step.")
    head_patience: int = param(5, "Epochs without a better validation loss before stopping.")
    head_schedule: str = param("constant", SCHEDULE_HELP)
    head_warmup_epochs: float = param(0.0, "Warmup epochs of the cosine schedule.")
    head_label_smoothing: float = param(
        0.0, "Label smoothing of the head's loss (0 = none; 0.1 is the usual choice)."
    )
    class_weight: str = param("none", "none, or balanced (weights inverse to class frequency).")
    head_sweep: int = param(
        0,
        "Head settings to try on the cached features (learning rate, widths, dropout, label "
        "smoothing; the configured head first); the best on validation is kept. 0 = just the "
        "configured head.",
    )
    sweep_budget: float = param(600.0, "Seconds the head sweep may run; no trial starts after.")
    seed: int = param(0, SEED_HELP)

    def problems(self) -> list[str]:
        """Known optimizer and class weighting, widths, dropout and positive counts."""
        found = []
        if self.head_optimizer not in OPTIMIZERS:
            found.append(
                f"--head-optimizer {self.head_optimizer!r}: use one of {', '.join(OPTIMIZERS)}"
            )
        found += range_problems(self, ("head_dropout",), 0, 1, closed=False)
        if self.class_weight not in ("none", "balanced"):
            found.append(f"--class-weight {self.class_weight!r}: use none or balanced")
        if not self.head_learning_rate > 0:
            found.append(f"--head-learning-rate must be > 0, got {self.head_learning_rate}")
        try:
            parse_units(self.head_units)
        except ValueError:
            found.append(f"--head-units {self.head_units!r}: give widths like 256 or 512,128")
        found += _recipe_problems(self, "head")
        if not self.sweep_budget > 0:
            found.append(f"--sweep-budget must be > 0 seconds, got {self.sweep_budget}")
        return (
            found
            + at_least(self, 1, "head_epochs", "head_batch_size", "head_patience")
            + at_least(self, 0, "head_sweep")
        )

    @property
    def hidden_units(self) -> list[int]:
        """The hidden layer widths as integers."""
        return parse_units(self.head_units)


@dataclass(frozen=True)
class FineTuneConfig(Config):
    """Fine-tuning the top of the backbone together with the trained head."""

    TITLE: ClassVar[str] = "Fine-tuning"

    unfreeze: str = param(
        "default",
        "Backbone layers to train: default (the backbone's own), top_n_layers=N, "
        "from_layer=NAME, after_layer=NAME, or all. BatchNorm layers stay frozen.",
    )
    fine_tune_optimizer: str = param("adam", "adam, sgd (with --momentum), rmsprop or adamw.")
    fine_tune_learning_rate: float = param(5e-5, "Learning rate: small, to keep the features.")
    momentum: float = param(0.9, "SGD momentum.")
    fine_tune_epochs: int = param(
        20,
        "Most epochs; early stopping may end sooner. Fine-tuning's cost is proportional: 10 "
        "with --fine-tune-learning-rate 1e-4 halves it for ~2 accuracy points.",
    )
    fine_tune_batch_size: int = param(
        16, "Images per step (per replica on several GPUs); 16 beat 32 on validation."
    )
    fine_tune_patience: int = param(4, "Epochs without a better validation loss before stopping.")
    fine_tune_schedule: str = param("cosine", SCHEDULE_HELP)
    fine_tune_warmup_epochs: float = param(1.0, "Warmup epochs of the cosine schedule.")
    fine_tune_label_smoothing: float = param(
        0.1, "Label smoothing of the fine-tuning loss (0 = none)."
    )
    layer_decay: float = param(
        1.0,
        "Layer-wise learning-rate decay: each unfrozen backbone layer learns at decay**depth "
        "of the rate, depth counted from the top (1 = every layer at the full rate).",
    )
    ema_momentum: float = param(
        0.99,
        "Keep and use an exponential moving average of the weights, updated every step "
        "with this momentum (0 = off; 0.99 averages over ~100 steps).",
    )
    augmentation: str = param(
        "flip,translation=0.05",
        "Training-input augmentation: comma-separated flip, rotation=F, zoom=F, "
        "translation=F, contrast=F, erasing=F (a random rectangle, probability F) ('' = none).",
    )
    mixed_precision: str = param("auto", "auto (on for GPUs that support it), on, or off.")
    determinism: str = param(
        "auto",
        "Deterministic ops, so one seed gives one model: auto (on without GPUs, where it costs "
        "nothing measurable), on, or off.",
    )
    warm_start: bool = param(
        False,
        "Start fine-tuning from the production model (the export destination's latest) when "
        "it has the same classes and architecture; otherwise from the trained head.",
    )
    cold_start_every: int = param(
        0,
        "With --warm-start, start cold when this would be the N-th run in a row without a "
        "cold start (7 on a nightly schedule: one cold retrain a week; 0 = never forced).",
    )
    seed: int = param(0, SEED_HELP)

    def problems(self) -> list[str]:
        """Known optimizer, policy, augmentation and precision; positive rates and counts."""
        found = []
        if self.fine_tune_optimizer not in OPTIMIZERS:
            found.append(
                f"--fine-tune-optimizer {self.fine_tune_optimizer!r}: use one of "
                f"{', '.join(OPTIMIZERS)}"
            )
        try:
            parse_unfreeze(self.unfreeze)
        except ValueError:
            found.append(
                f"--unfreeze {self.unfreeze!r}: use default, all, top_n_layers=N, "
                "from_layer=NAME or after_layer=NAME"
            )
        try:
            parse_augmentation(self.augmentation)
        except ValueError as err:
            found.append(f"--augmentation {err}")
        for name in ("mixed_precision", "determinism"):
            if getattr(self, name) not in ("auto", "on", "off"):
                found.append(f"{flag(name)} {getattr(self, name)!r}: use auto, on or off")
        if not self.fine_tune_learning_rate > 0:
            found.append(
                f"--fine-tune-learning-rate must be > 0, got {self.fine_tune_learning_rate}"
            )
        found += range_problems(self, ("momentum", "ema_momentum"), 0, 1, closed=False)
        if not 0 < self.layer_decay <= 1:
            found.append(f"--layer-decay must be in (0, 1], got {self.layer_decay}")
        found += _recipe_problems(self, "fine_tune")
        return (
            found
            + at_least(self, 1, "fine_tune_epochs", "fine_tune_batch_size", "fine_tune_patience")
            + at_least(self, 0, "cold_start_every")
        )
