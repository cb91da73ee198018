"""Every parameter of a run, declared once: frozen dataclasses with documented defaults.

Each field carries its help text in `metadata["help"]`. From these classes come the
components' parameters (name, type, default and description: `components/component.py`
adds a step's fields to its signature and docstring), the pipeline's parameters and
their descriptions in the KFP UI (`pipelines/transfer_learning.py`), and the CLI's
options (`pipelines/options.py`). Adding a hyper-parameter to a step is one field here.

`validate_run` checks a whole run's parameters at once, in milliseconds (no TensorFlow),
before anything is compiled, submitted or started; every class checks its own fields in
`problems()`, which a step repeats when it builds its config.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kftransfer.components.core.errors import ParameterError
from kftransfer.components.core.registry import REGISTRY, is_known
from kftransfer.components.core.specs import parse_augmentation, parse_unfreeze, parse_units


def _param(default: Any, help: str) -> Any:  # noqa: A002 - mirrors click's keyword
    return field(default=default, metadata={"help": help})


def flag(name: str) -> str:
    """The CLI spelling of a parameter: `fine_tune_epochs` -> `--fine-tune-epochs`."""
    return "--" + name.replace("_", "-")


SEED_HELP = "Seed of the split, initialisation, dropout and shuffling."


class _Config:
    """Base of the parameter dataclasses: coerces numeric types, then validates."""

    TITLE: ClassVar[str] = ""

    def __post_init__(self):
        """Coerces whole floats to int fields (KFP may deliver 3.0 for 3), then validates.

        Raises:
            ParameterError: naming every impossible value at once.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type is int and isinstance(value, float) and value.is_integer():
                object.__setattr__(self, f.name, int(value))
            elif f.type is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        problems = self.problems()
        if problems:
            raise ParameterError(problems)

    def problems(self) -> list[str]:
        """One message per impossible value, each naming its option; none by default."""
        return []

    @classmethod
    def from_params(cls, params: Mapping[str, Any]):
        """The config from a mapping holding (at least) every field, e.g. a step's `locals()`."""
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)})

    @classmethod
    def arguments(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """This class's fields taken from `params`: the keyword arguments of a task call."""
        return {f.name: params[f.name] for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        """The field values by name."""
        return dataclasses.asdict(self)


def _range_problems(config: _Config, names: tuple[str, ...], low, high, closed: bool) -> list:
    found = []
    for name in names:
        value = getattr(config, name)
        if not (low <= value <= high if closed else low <= value < high):
            found.append(
                f"{flag(name)} must be in [{low}, {high}{']' if closed else ')'}, got {value}"
            )
    return found


def _at_least(config: _Config, minimum: int, *names: str) -> list[str]:
    return [
        f"{flag(name)} must be >= {minimum}, got {getattr(config, name)}"
        for name in names
        if getattr(config, name) < minimum
    ]


@dataclass(frozen=True)
class SplitConfig(_Config):
    """How images are validated and assigned to train / validation / test."""

    TITLE: ClassVar[str] = "Split"

    val_fraction: float = _param(0.15, "Fraction of each class assigned to validation.")
    test_fraction: float = _param(0.15, "Fraction of each class assigned to test.")
    seed: int = _param(0, SEED_HELP)
    min_images_per_class: int = _param(
        10, "Fewest valid images a class may have; fewer is an error."
    )
    min_image_side: int = _param(16, "Images with a side shorter than this (px) are skipped.")
    max_image_pixels: int = _param(
        50_000_000, "Images with more pixels are skipped as decompression bombs."
    )
    exclude: str = _param(
        "",
        "A file of images to leave out (local or gs://): one URI per line, or a CSV with a "
        "'uri' column such as a run's label_issues.csv; empty for none.",
    )

    def problems(self) -> list[str]:
        """Fractions in [0, 1) leaving something to train on; positive minimums."""
        found = _range_problems(self, ("val_fraction", "test_fraction"), 0, 1, closed=False)
        if not found and self.val_fraction + self.test_fraction >= 1:
            found.append(
                "--val-fraction + --test-fraction must be < 1: nothing would be left to train on"
            )
        return found + _at_least(
            self, 1, "min_images_per_class", "min_image_side", "max_image_pixels"
        )


POOLINGS = ("avg", "max", "flatten")
TFLITE_MODES = ("none", "float", "fp16", "dynamic", "int8")
PREPROCESSINGS = ("caffe", "tf", "torch", "none")


@dataclass(frozen=True)
class ExtractConfig(_Config):
    """Which backbone computes the bottleneck features, and how."""

    TITLE: ClassVar[str] = "Bottleneck extraction"

    backbone: str = _param(
        "mobilenet_v2",
        "Backbone: vgg16, resnet50, inception_v3, mobilenet, mobilenet_v2, efficientnet_b0, "
        "densenet121, the URI of a complete .keras model (bring your own), or "
        "keras_hub:PRESET (a KerasHub preset name such as dinov2_small, or a preset folder, "
        "local or gs://).",
    )
    weights: str = _param(
        "imagenet",
        "imagenet (Keras download; a KerasHub preset's own weights), none (random; tests, "
        "air-gapped), or the URI of a .weights.h5/.keras file for the backbone.",
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

    def problems(self) -> list[str]:
        """A known backbone at a size it accepts, known pooling, dtype and preprocessing."""
        found = []
        if not is_known(self.backbone):
            found.append(
                f"--backbone {self.backbone!r}: use one of {', '.join(sorted(REGISTRY))}, "
                "the URI of a .keras model, or keras_hub:PRESET"
            )
        spec = REGISTRY.get(self.backbone)
        if self.image_size < 0:
            found.append(
                f"--image-size must be >= 0 (0 = the backbone's default), got {self.image_size}"
            )
        elif spec and 0 < self.image_size < spec.min_size:
            found.append(
                f"--image-size {self.image_size} is below {self.backbone}'s minimum {spec.min_size}"
            )
        if self.pooling not in POOLINGS:
            found.append(f"--pooling {self.pooling!r}: use avg, max or flatten")
        if self.feature_dtype not in ("float16", "float32"):
            found.append(f"--feature-dtype {self.feature_dtype!r}: use float16 or float32")
        if self.preprocessing and self.preprocessing not in PREPROCESSINGS:
            found.append(
                f"--preprocessing {self.preprocessing!r}: use one of {', '.join(PREPROCESSINGS)}"
            )
        return found + _at_least(self, 1, "batch_size")


OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
SCHEDULES = ("constant", "cosine")
SCHEDULE_HELP = (
    "Learning-rate schedule: constant, or cosine (linear warmup, then a half cosine to 0 at "
    "the last planned epoch)."
)


def _recipe_problems(config: _Config, prefix: str) -> list[str]:
    """A known schedule, warmup >= 0, label smoothing in [0, 1)."""
    found = []
    schedule = getattr(config, f"{prefix}_schedule")
    if schedule not in SCHEDULES:
        found.append(f"{flag(prefix + '_schedule')} {schedule!r}: use constant or cosine")
    if getattr(config, f"{prefix}_warmup_epochs") < 0:
        found.append(f"{flag(prefix + '_warmup_epochs')} must be >= 0")
    return found + _range_problems(config, (f"{prefix}_label_smoothing",), 0, 1, closed=False)


@dataclass(frozen=True)
class HeadConfig(_Config):
    """The small classifier trained on cached features."""

    TITLE: ClassVar[str] = "Head training"

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
    head_schedule: str = _param("constant", SCHEDULE_HELP)
    head_warmup_epochs: float = _param(0.0, "Warmup epochs of the cosine schedule.")
    head_label_smoothing: float = _param(
        0.0, "Label smoothing of the head's loss (0 = none; 0.1 is the usual choice)."
    )
    class_weight: str = _param("none", "none, or balanced (weights inverse to class frequency).")
    head_sweep: int = _param(
        0,
        "Head settings to try on the cached features (learning rate, widths, dropout, label "
        "smoothing; the configured head first); the best on validation is kept. 0 = just the "
        "configured head.",
    )
    sweep_budget: float = _param(600.0, "Seconds the head sweep may run; no trial starts after.")
    seed: int = _param(0, SEED_HELP)

    def problems(self) -> list[str]:
        """Known optimizer and class weighting, widths, dropout and positive counts."""
        found = []
        if self.head_optimizer not in OPTIMIZERS:
            found.append(
                f"--head-optimizer {self.head_optimizer!r}: use one of {', '.join(OPTIMIZERS)}"
            )
        found += _range_problems(self, ("head_dropout",), 0, 1, closed=False)
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
            + _at_least(self, 1, "head_epochs", "head_batch_size", "head_patience")
            + _at_least(self, 0, "head_sweep")
        )

    @property
    def hidden_units(self) -> list[int]:
        """The hidden layer widths as integers."""
        return parse_units(self.head_units)


@dataclass(frozen=True)
class FineTuneConfig(_Config):
    """Fine-tuning the top of the backbone together with the trained head."""

    TITLE: ClassVar[str] = "Fine-tuning"

    unfreeze: str = _param(
        "default",
        "Backbone layers to train: default (the backbone's own), top_n_layers=N, "
        "from_layer=NAME, after_layer=NAME, or all. BatchNorm layers stay frozen.",
    )
    fine_tune_optimizer: str = _param("adam", "adam, sgd (with --momentum), rmsprop or adamw.")
    fine_tune_learning_rate: float = _param(5e-5, "Learning rate: small, to keep the features.")
    momentum: float = _param(0.9, "SGD momentum.")
    fine_tune_epochs: int = _param(20, "Most epochs; early stopping may end sooner.")
    fine_tune_batch_size: int = _param(
        16, "Images per step (per replica on several GPUs); 16 beat 32 on validation."
    )
    fine_tune_patience: int = _param(4, "Epochs without a better validation loss before stopping.")
    fine_tune_schedule: str = _param("cosine", SCHEDULE_HELP)
    fine_tune_warmup_epochs: float = _param(1.0, "Warmup epochs of the cosine schedule.")
    fine_tune_label_smoothing: float = _param(
        0.1, "Label smoothing of the fine-tuning loss (0 = none)."
    )
    layer_decay: float = _param(
        1.0,
        "Layer-wise learning-rate decay: each unfrozen backbone layer learns at decay**depth "
        "of the rate, depth counted from the top (1 = every layer at the full rate).",
    )
    ema_momentum: float = _param(
        0.99,
        "Keep and use an exponential moving average of the weights, updated every step "
        "with this momentum (0 = off; 0.99 averages over ~100 steps).",
    )
    augmentation: str = _param(
        "flip,translation=0.05",
        "Training-input augmentation: comma-separated flip, rotation=F, zoom=F, "
        "translation=F, contrast=F, erasing=F (a random rectangle, probability F) ('' = none).",
    )
    mixed_precision: str = _param("auto", "auto (on for GPUs that support it), on, or off.")
    determinism: str = _param(
        "auto",
        "Deterministic ops, so one seed gives one model: auto (on without GPUs, where it costs "
        "nothing measurable), on, or off.",
    )
    warm_start: bool = _param(
        False,
        "Start fine-tuning from the production model (the export destination's latest) when "
        "it has the same classes and architecture; otherwise from the trained head.",
    )
    cold_start_every: int = _param(
        0,
        "With --warm-start, start cold when this would be the N-th run in a row without a "
        "cold start (7 on a nightly schedule: one cold retrain a week; 0 = never forced).",
    )
    seed: int = _param(0, SEED_HELP)

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
        found += _range_problems(self, ("momentum", "ema_momentum"), 0, 1, closed=False)
        if not 0 < self.layer_decay <= 1:
            found.append(f"--layer-decay must be in (0, 1], got {self.layer_decay}")
        found += _recipe_problems(self, "fine_tune")
        return (
            found
            + _at_least(self, 1, "fine_tune_epochs", "fine_tune_batch_size", "fine_tune_patience")
            + _at_least(self, 0, "cold_start_every")
        )


@dataclass(frozen=True)
class EvalConfig(_Config):
    """How the candidate is judged against the threshold and the production model."""

    TITLE: ClassVar[str] = "Evaluation and blessing"

    min_accuracy: float = _param(0.0, "Fine-tuned test accuracy required to export.")
    baseline_tolerance: float = _param(
        0.01, "Test accuracy this far below the production model's still counts as good enough."
    )
    min_class_recall: float = _param(0.0, "Every class's test recall must reach this (0 = off).")
    skill_alpha: float = _param(
        0.01,
        "Significance level of the no-skill gate: the candidate must beat always answering "
        "the largest training class (one-sided exact binomial test) at this level.",
    )
    min_confidence: float = _param(
        0.0,
        "The exported model answers 'unknown' when its calibrated confidence is below this "
        "(0 = always answers a class).",
    )
    target_precision: float = _param(
        0.0,
        "Choose --min-confidence as the lowest whose answers reach this accuracy on "
        "validation (0 = off; overrides --min-confidence).",
    )
    label_issue_folds: int = _param(
        5, "Folds of the label-issue search on cached features (0 = no search)."
    )
    near_duplicate_threshold: float = _param(
        0.95, "Cosine similarity of features from which two images are near-duplicates."
    )
    test_time_flip: bool = _param(
        False,
        "Average each prediction over the image and its mirror image, in evaluation and in "
        "the exported model (twice the inference cost).",
    )
    top_k: int = _param(3, "k of the reported top-k accuracy.")
    misclassified_examples: int = _param(24, "Misclassified test images shown in the report.")

    def problems(self) -> list[str]:
        """Accuracies and tolerances in [0, 1], k >= 1, a non-negative example count."""
        names = (
            "min_accuracy",
            "baseline_tolerance",
            "min_class_recall",
            "min_confidence",
            "target_precision",
            "near_duplicate_threshold",
        )
        return (
            _range_problems(self, names, 0, 1, closed=True)
            + (
                []
                if 0 < self.skill_alpha < 1
                else [f"--skill-alpha must be in (0, 1), got {self.skill_alpha}"]
            )
            + _at_least(self, 1, "top_k")
            + _at_least(self, 0, "misclassified_examples", "label_issue_folds")
        )


@dataclass(frozen=True)
class ExportConfig(_Config):
    """What an export writes besides the SavedModel and the Keras model."""

    TITLE: ClassVar[str] = "Export"

    tflite: str = _param(
        "none",
        "Also export model.tflite: none, float, fp16, dynamic (int8 weights) or int8 "
        "(weights and activations, calibrated on train images); judged on the test split.",
    )
    max_tflite_drop: float = _param(
        1.0,
        "Most test-accuracy points model.tflite may lose against the model; more fails the export.",
    )

    def problems(self) -> list[str]:
        """A known TFLite mode, a non-negative drop."""
        found = (
            []
            if self.tflite in TFLITE_MODES
            else [f"--tflite {self.tflite!r}: use one of {', '.join(TFLITE_MODES)}"]
        )
        return found + (
            []
            if self.max_tflite_drop >= 0
            else [f"--max-tflite-drop must be >= 0, got {self.max_tflite_drop}"]
        )


@dataclass(frozen=True)
class Locations(_Config):
    """Where a run keeps what outlives it (local paths or gs:// URIs; empty for none)."""

    TITLE: ClassVar[str] = "Locations"

    cache_uri: str = _param("", "Feature cache root (local or gs://); empty for none.")
    checkpoint_uri: str = _param(
        "", "Resume-after-preemption checkpoints (local or gs://); empty for none."
    )
    tensorboard_uri: str = _param("", "TensorBoard log folder (local or gs://); empty for none.")
    export_uri: str = _param(
        "", "Export folder (local or gs://); its latest version is the production model."
    )


# The pipeline's parameters after `source`, in this order (a field name shared by several
# classes, like `seed`, is one parameter).
PIPELINE_CONFIGS = (
    SplitConfig,
    ExtractConfig,
    HeadConfig,
    FineTuneConfig,
    EvalConfig,
    ExportConfig,
    Locations,
)
SOURCE_HELP = "Folder of class folders, train/validation/test tree, or uri,label CSV."


def pipeline_fields() -> dict[str, dataclasses.Field]:
    """Every parameter of a run but `source`, by name, in pipeline order (first owner wins)."""
    found: dict[str, dataclasses.Field] = {}
    for config_cls in PIPELINE_CONFIGS:
        for f in dataclasses.fields(config_cls):
            found.setdefault(f.name, f)
    return found


def field_help(name: str) -> str:
    """The help text of a run parameter (`source` included)."""
    if name == "source":
        return SOURCE_HELP
    found = pipeline_fields().get(name)
    return found.metadata["help"] if found else ""


def validate_run(params: Mapping[str, Any], check_layers: bool = True) -> dict[type, _Config]:
    """Builds every config of a run from `params` (absent fields keep their defaults).

    Args:
        params: the run's parameters by name (`source` may be among them).
        check_layers: also check that a layer an unfreeze policy names exists, which
            builds the backbone's architecture (a few seconds, TensorFlow imported) only
            when a policy names a layer.

    Returns:
        Config class -> its instance.

    Raises:
        ParameterError: one line naming every bad parameter, or a parameter no step takes.
        UserError: the unfreeze policy names a layer the backbone lacks.
    """
    known = set(pipeline_fields()) | {"source"}
    problems = [f"unknown parameter {name!r}" for name in params if name not in known]
    configs = {}
    for config_cls in PIPELINE_CONFIGS:
        names = {f.name for f in dataclasses.fields(config_cls)}
        try:
            configs[config_cls] = config_cls(**{k: v for k, v in params.items() if k in names})
        except ParameterError as err:
            problems += [p for p in err.problems if p not in problems]
        except TypeError as err:  # a value of the wrong type from a caller, not the CLI
            problems.append(f"{config_cls.__name__}: {err}")
    if problems:
        raise ParameterError(problems, prefix="bad parameters: ")
    tune, extract = configs[FineTuneConfig], configs[ExtractConfig]
    if check_layers and parse_unfreeze(tune.unfreeze)[0] in ("from_layer", "after_layer"):
        from kftransfer.components.core.fine_tune_model import check_unfreeze_policy

        check_unfreeze_policy(extract, tune)
    return configs
