"""Every parameter of a run, declared once: frozen dataclasses with documented defaults.

Each field carries its help text in `metadata["help"]`. From these classes come the
components' parameters (name, type, default and description: `components/component.py`
adds a step's fields to its signature and docstring), the pipeline's parameters and
their descriptions in the KFP UI (`pipelines/transfer_learning.py`), and the CLI's
options (`pipelines/options.py`). Adding a hyper-parameter to a step is one field here.

The classes live by stage: split and extraction here, head and fine-tuning in
`config_training`, evaluation (and the TFLite gate) in `config_evaluation`, their base in
`config_base`; every one is imported from this module.

`validate_run` checks a whole run's parameters at once, in milliseconds (no TensorFlow),
before anything is compiled, submitted or started; every class checks its own fields in
`problems()`, which a step repeats when it builds its config.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from kftransfer.components.core.config_base import (
    SEED_HELP,
    Config,
    at_least,
    flag,
    param,
    range_problems,
)
from kftransfer.components.core.config_evaluation import TFLITE_MODES, EvalConfig
from kftransfer.components.core.config_training import FineTuneConfig, HeadConfig
from kftransfer.components.core.errors import ParameterError
from kftransfer.components.core.registry import REGISTRY, is_known
from kftransfer.components.core.specs import parse_unfreeze

__all__ = [
    "PIPELINE_CONFIGS",
    "TFLITE_MODES",
    "Config",
    "EvalConfig",
    "ExtractConfig",
    "FineTuneConfig",
    "HeadConfig",
    "Locations",
    "SplitConfig",
    "as_declared",
    "field_help",
    "flag",
    "pipeline_fields",
    "validate_run",
]


@dataclass(frozen=True)
class SplitConfig(Config):
    """How images are validated and assigned to train / validation / test."""

    TITLE: ClassVar[str] = "Split"

    val_fraction: float = param(0.15, "Fraction of each class assigned to validation.")
    test_fraction: float = param(0.15, "Fraction of each class assigned to test.")
    seed: int = param(0, SEED_HELP)
    min_images_per_class: int = param(
        10, "Fewest valid images a class may have; fewer is an error."
    )
    min_image_side: int = param(16, "Images with a side shorter than this (px) are skipped.")
    max_image_pixels: int = param(
        50_000_000,
        "Images that decode to more pixels are skipped as decompression bombs (a JPEG decodes "
        "at 1/8 of each side, so a 200-megapixel photo counts about 3 megapixels).",
    )
    exclude: str = param(
        "",
        "A file of images to leave out (local or gs://): one URI per line, or a CSV with a "
        "'uri' column such as a run's label_issues.csv; empty for none.",
    )

    def problems(self) -> list[str]:
        """Fractions in [0, 1) leaving something to train on; positive minimums."""
        found = range_problems(self, ("val_fraction", "test_fraction"), 0, 1, closed=False)
        if not found and self.val_fraction + self.test_fraction >= 1:
            found.append(
                "--val-fraction + --test-fraction must be < 1: nothing would be left to train on"
            )
        return found + at_least(
            self, 1, "min_images_per_class", "min_image_side", "max_image_pixels"
        )


POOLINGS = ("avg", "max", "flatten")
PREPROCESSINGS = ("caffe", "tf", "torch", "none")


@dataclass(frozen=True)
class ExtractConfig(Config):
    """Which backbone computes the bottleneck features, and how."""

    TITLE: ClassVar[str] = "Bottleneck extraction"

    backbone: str = param(
        "mobilenet_v2",
        "Backbone: vgg16, resnet50, inception_v3, mobilenet, mobilenet_v2, efficientnet_b0, "
        "densenet121, the URI of a complete .keras model (bring your own), or "
        "keras_hub:PRESET (a KerasHub preset name such as dinov2_small, or a preset folder, "
        "local or gs://).",
    )
    weights: str = param(
        "imagenet",
        "imagenet (Keras download; a KerasHub preset's own weights), none (random; tests, "
        "air-gapped), or the URI of a .weights.h5/.keras file for the backbone.",
    )
    image_size: int = param(0, "Input size in pixels; 0 = the backbone's default.")
    pooling: str = param("avg", "Feature pooling: avg, max, or flatten (e.g. VGG16's 4x4x512).")
    batch_size: int = param(32, "Images per forward pass.")
    feature_dtype: str = param("float16", "Stored feature dtype: float16 or float32.")
    feature_layer: str = param(
        "", "Bring-your-own backbone: its feature layer (default: the last pooling layer)."
    )
    preprocessing: str = param(
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
        return found + at_least(self, 1, "batch_size")


@dataclass(frozen=True)
class Locations(Config):
    """Where a run keeps what outlives it (local paths or gs:// URIs; empty for none)."""

    TITLE: ClassVar[str] = "Locations"

    cache_uri: str = param(
        "",
        "Cache shared by runs, keyed by image content: image checks, features and decoded "
        "pixels (local or gs://); empty for none.",
    )
    checkpoint_uri: str = param(
        "", "Resume-after-preemption checkpoints (local or gs://); empty for none."
    )
    tensorboard_uri: str = param("", "TensorBoard log folder (local or gs://); empty for none.")
    export_uri: str = param(
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


def as_declared(params: Mapping[str, Any], configs: dict[type, Config]) -> dict[str, Any]:
    """`params` with each run parameter's value as its config holds it (0 -> 0.0 for a float).

    KFP refuses an int for a float parameter (and a float for an int) when the pipeline is
    called; `validate_run`'s configs hold the coerced values.
    """
    held = {f.name: getattr(c, f.name) for c in configs.values() for f in dataclasses.fields(c)}
    return {name: held.get(name, value) for name, value in params.items()}


def validate_run(params: Mapping[str, Any], check_layers: bool = True) -> dict[type, Config]:
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
