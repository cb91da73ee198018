"""The fine-tuning model: which backbone layers train, the augmentation, the assembly.

Raw uint8 images -> preprocessing -> backbone (BatchNorm frozen, so it keeps its
statistics) -> pooling -> the trained head. Only the layers an unfreeze policy names
train, never BatchNormalization; the training input alone is augmented.
"""

import keras

from kftransfer.components.core.backbones import Backbone, load_backbone
from kftransfer.components.core.config import ExtractConfig, FineTuneConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.features import feature_extractor
from kftransfer.components.core.registry import is_custom, is_hub
from kftransfer.components.core.specs import parse_augmentation, parse_unfreeze

AUGMENTATION_LAYERS = {
    "flip": lambda _: keras.layers.RandomFlip("horizontal"),
    "rotation": keras.layers.RandomRotation,
    "zoom": keras.layers.RandomZoom,
    "translation": lambda f: keras.layers.RandomTranslation(f, f),
    "contrast": keras.layers.RandomContrast,
    # (f, f): probability f; a single float would draw each image's probability from [0, f]
    "erasing": lambda f: keras.layers.RandomErasing(factor=(f, f), value_range=(0, 255)),
}


def unfreeze_start(layers: list[keras.layers.Layer], policy: str, default: str) -> int:
    """The index of the first backbone layer to train under `policy`.

    Policies: `default` (the backbone's registry default), `all`, `top_n_layers=N`,
    `from_layer=NAME` (NAME and above), `after_layer=NAME` (above NAME).

    Raises:
        UserError: an unknown policy or layer name.
    """
    policy = default if policy == "default" else policy
    try:
        kind, value = parse_unfreeze(policy)
    except ValueError:
        raise UserError(
            f"--unfreeze {policy!r}: use default, all, top_n_layers=N, from_layer=NAME "
            "or after_layer=NAME"
        ) from None
    if kind == "all":
        return 0
    if kind == "top_n_layers":
        return max(len(layers) - int(value), 0)
    names = [layer.name for layer in layers]
    if value not in names:
        raise UserError(
            f"--unfreeze {policy}: the backbone has no layer {value!r} "
            f"(its layers run from {names[1]!r} to {names[-1]!r})"
        )
    return names.index(value) + (kind == "after_layer")


def check_unfreeze_policy(extract: ExtractConfig, tune: FineTuneConfig) -> None:
    """Fails fast on a policy naming a layer the backbone does not have.

    Builds the registry backbone's architecture (no weights: a second or two) only when the
    policy names a layer, so a typo is one line before a run, not after extraction.

    Raises:
        UserError: the layer does not exist.
    """
    kind, _ = parse_unfreeze(tune.unfreeze)
    named = kind in ("from_layer", "after_layer")
    # .keras files and KerasHub presets are checked when fine-tuning builds them (their
    # layers are known only after a read or a download)
    if not named or is_custom(extract.backbone) or is_hub(extract.backbone):
        return
    backbone = load_backbone(extract.backbone, "none", extract.image_size)
    unfreeze_start(backbone.layers(), tune.unfreeze, backbone.unfreeze)


def set_trainable(backbone: Backbone, policy: str) -> list[str]:
    """Unfreezes the layers `policy` names (never BatchNormalization); returns their names.

    `default` means the backbone's own default policy; layers are counted over
    `backbone.layers()`. Every BatchNormalization at any depth stays frozen, which is
    what keeps it in inference mode: Keras 3 passes `fit`'s `training=True` down through
    the whole graph, over the `training=False` the backbone is called with, and a
    BatchNormalization uses its batch's statistics (and updates its moving ones) when
    it is trainable.
    """
    units = backbone.layers()
    start = unfreeze_start(units, policy, backbone.unfreeze)
    backbone.base.trainable = True
    for index, layer in enumerate(units):
        layer.trainable = index >= start
    for layer in backbone.base._flatten_layers(include_self=False):  # every depth
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return [layer.name for layer in units if layer.trainable_weights]


def build_fine_tune_model(backbone: Backbone, head: keras.Model, pooling: str) -> keras.Model:
    """Raw uint8 images -> preprocessing -> backbone (inference mode) -> pooling -> `head`.

    Raises:
        UserError: the head does not take this backbone's features.
    """
    extractor = feature_extractor(backbone, pooling)
    dim = extractor.output_shape[-1]
    if head.input_shape[-1] != dim:
        raise UserError(
            f"the head takes {head.input_shape[-1]} features but {backbone.name} with {pooling} "
            f"pooling gives {dim}: train the head on this backbone's features"
        )
    return keras.Model(extractor.input, head(extractor.output), name="classifier")


def augmentation(spec: str) -> keras.Sequential | None:
    """Random layers from `flip,rotation=0.05,zoom=0.1,...` (None when `spec` is empty).

    Raises:
        UserError: the spec does not parse (see `config.parse_augmentation`).
    """
    try:
        parsed = parse_augmentation(spec)
    except ValueError as err:
        raise UserError(f"--augmentation {err}") from None
    layers = [AUGMENTATION_LAYERS[name](factor) for name, factor in parsed]
    return keras.Sequential(layers, name="augmentation") if layers else None
