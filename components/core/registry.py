"""The backbone registry as plain data (no Keras import), so parameters validate instantly.

Each entry names its `keras.applications` constructor, default input size, preprocessing
mode, feature channels and default fine-tuning unfreeze point; adding a backbone is one
entry. `backbones.py` builds the models.
"""

import os
from dataclasses import dataclass

KERAS_SUFFIX = ".keras"


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry.

    Attributes:
        application: the `keras.applications` constructor's name.
        default_size: the native input size in pixels.
        preprocessing: the mode its ImageNet weights expect (see `layers.Preprocess`).
        channels: feature channels before pooling (the dim with `avg` / `max` pooling).
        unfreeze: the default fine-tuning policy (see `fine_tune.unfreeze_start`).
        min_size: the smallest input size the architecture accepts.
    """

    application: str
    default_size: int
    preprocessing: str
    channels: int
    unfreeze: str
    min_size: int = 32


REGISTRY: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec("VGG16", 224, "caffe", 512, "from_layer=block5_conv1"),
    "resnet50": BackboneSpec("ResNet50", 224, "caffe", 2048, "from_layer=conv5_block1_1_conv"),
    "inception_v3": BackboneSpec("InceptionV3", 299, "tf", 2048, "after_layer=mixed8", 75),
    # MobileNets: the top ~55% (measured on Fashion-MNIST, docs/benchmarks.md; the classic
    # conv_dw_12 / block_15 points gained nothing there).
    "mobilenet": BackboneSpec("MobileNet", 224, "tf", 1024, "from_layer=conv_dw_6"),
    "mobilenet_v2": BackboneSpec("MobileNetV2", 224, "tf", 1280, "from_layer=block_11_expand"),
    "efficientnet_b0": BackboneSpec("EfficientNetB0", 224, "none", 1280, "top_n_layers=20"),
    "densenet121": BackboneSpec("DenseNet121", 224, "torch", 1024, "from_layer=conv5_block1_0_bn"),
}

# Bring-your-own `.keras` backbones: the default unfreeze policy.
CUSTOM_UNFREEZE = "top_n_layers=20"

# KerasHub presets (`keras_hub:dinov2_small`, a preset folder or gs:// folder; see
# `hub_backbones.py`); by default the top 3 blocks and the final norm of the tower train.
HUB_PREFIX = "keras_hub:"
HUB_UNFREEZE = "top_n_layers=4"


def is_hub(backbone: str) -> bool:
    """Whether `backbone` names a KerasHub preset (`keras_hub:PRESET`)."""
    return backbone.startswith(HUB_PREFIX) and len(backbone) > len(HUB_PREFIX)


def names_local_folder(preset: str) -> bool:
    """Whether a KerasHub PRESET names a local folder rather than a preset or a handle.

    A preset is a name (`dinov2_small`, no slash), a handle (`kaggle://...`, `hf://...`,
    `gs://...`), or a folder: anything without `://` that has a path separator or starts
    with `.`, `/` or `~`.
    """
    return "://" not in preset and (preset.startswith((".", "/", "~")) or os.sep in preset)


def missing_preset_folder(backbone: str) -> str | None:
    """The problem with a `keras_hub:` preset that names a local folder which does not exist."""
    preset = backbone[len(HUB_PREFIX) :]
    if not is_hub(backbone) or not names_local_folder(preset) or os.path.isdir(preset):
        return None
    return (
        f"--backbone {backbone}: no preset folder {preset} here (give a folder holding the "
        "preset's config.json, a preset name such as dinov2_small, or a kaggle://, hf:// or "
        "gs:// handle)"
    )


def is_known(backbone: str) -> bool:
    """Whether `backbone` is a registry name, a `.keras` model URI or a KerasHub preset."""
    return backbone in REGISTRY or is_custom(backbone) or is_hub(backbone)


def is_custom(backbone: str) -> bool:
    """Whether `backbone` names a complete `.keras` model file rather than a registry entry."""
    return backbone.endswith(KERAS_SUFFIX)
