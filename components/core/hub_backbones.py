"""KerasHub presets as backbones: DINOv2, DINOv3, SigLIP, CLIP and ViT vision towers.

`--backbone keras_hub:PRESET`, where PRESET is a KerasHub preset name (`dinov2_small`,
downloaded through kagglehub on first use), a `kaggle://` or `hf://` handle, or a preset
folder, local or `gs://` (copy one there for machines without internet). The features are
the class token of the tower's last layer, or its pooled output where the tower pools
(SigLIP). Images are normalised by the preset's own image converter, after kftransfer's
decode and resize (`images.decode_resized`): the converter's own bicubic resize is left
out, so training, evaluation and serving see the same pixels and the model converts to
TFLite. KerasHub is an optional install (`requirements-keras-hub.txt`); it is imported
only when a `keras_hub:` backbone, or a model holding one, is used.
"""

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator

import keras

from kftransfer.components.core import folders, storage
from kftransfer.components.core.backbones import Backbone, fingerprint
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.layers import ClassToken
from kftransfer.components.core.registry import HUB_PREFIX, HUB_UNFREEZE, names_local_folder

CONVERTER_FILE = "image_converter.json"
INSTALL = "pip install --no-deps -r requirements-keras-hub.txt"


def import_keras_hub():
    """The `keras_hub` module.

    Raises:
        UserError: KerasHub is not installed.
    """
    try:
        import keras_hub
    except ImportError as err:
        raise UserError(
            f"KerasHub backbones need the keras-hub package ({err}): {INSTALL}"
        ) from None
    return keras_hub


def load_hub_backbone(name: str, weights: str, image_size: int) -> Backbone:
    """The vision tower of KerasHub preset `name` (`keras_hub:PRESET`) as a backbone.

    Args:
        name: `keras_hub:` and a preset name, handle or folder (local or gs://).
        weights: `imagenet` for the preset's pretrained weights, `none` for random ones.
        image_size: input size in pixels; 0 for the preset's own.

    Raises:
        UserError: KerasHub missing, an unreadable preset or one without an image converter,
            another weights source, or a size the preset cannot take.
    """
    keras_hub = import_keras_hub()
    if weights not in ("imagenet", "none"):
        raise UserError(
            f"--weights {weights}: a KerasHub preset brings its own weights; use --weights "
            "imagenet (the preset's) or none (random)"
        )
    preset = name.removeprefix(HUB_PREFIX)
    with _preset_folder(preset) as location:
        tower, converter = _load_preset(keras_hub, location, name, weights, image_size)
    size = image_size or int(_image_input(tower)[1].shape[1])
    base = _feature_model(tower, converter, size)
    identity = json.dumps([fingerprint(base), converter.get_config(), keras_hub.__version__])
    digest = hashlib.sha256(identity.encode()).hexdigest()
    return Backbone(name, base, "none", size, HUB_UNFREEZE, digest, tower_units(tower))


@contextlib.contextmanager
def _preset_folder(preset: str) -> Iterator[str]:
    """A local folder for a gs:// or local preset folder; names and handles as they are."""
    if storage.is_gcs(preset) or os.path.isdir(preset):
        try:
            with folders.local_folder(preset) as folder:
                yield folder
        except storage.NotFoundError:
            raise UserError(f"KerasHub preset folder {preset} is empty or missing") from None
        return
    if names_local_folder(preset):
        raise UserError(f"KerasHub preset folder {preset} does not exist")
    yield preset


def _load_preset(keras_hub, location: str, name: str, weights: str, image_size: int):
    """(vision tower, image converter without its resize) from a preset."""
    shape = {"image_shape": (image_size, image_size, 3)} if image_size else {}
    try:
        backbone = keras_hub.models.Backbone.from_preset(
            location, load_weights=weights != "none", **shape
        )
        converter = _image_converter(keras_hub, location)
    except ImportError as err:
        raise UserError(f"cannot fetch {name}: {err} (named and hf:// presets download)") from None
    except Exception as err:  # noqa: BLE001 - KerasHub raises many types for a bad preset
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        hint = " (or pass --image-size 0 for the preset's own size)" if image_size else ""
        raise UserError(f"cannot load KerasHub preset {name}: {detail}{hint}") from None
    if converter is None:
        raise UserError(
            f"KerasHub preset {name} has no image converter (image_converter.json): "
            "use an image model's preset"
        )
    return getattr(backbone, "vision_encoder", backbone), converter


def _image_converter(keras_hub, location: str):
    """The preset's image converter without its resize, or None when it has none.

    KerasHub finds a converter class by the preset's backbone class, which fails for a
    vision tower saved on its own (a CLIP or SigLIP tower without its text half); a local
    folder's `image_converter.json` is then read directly.
    """
    path = os.path.join(location, CONVERTER_FILE)
    if os.path.isdir(location) and not os.path.isfile(path):
        return None
    try:
        return keras_hub.layers.ImageConverter.from_preset(location, image_size=None)
    except ValueError:
        if not os.path.isfile(path):
            raise
    with open(path, encoding="utf-8") as file:
        spec = json.load(file)
    spec["config"]["image_size"] = None
    return keras.saving.deserialize_keras_object(spec)


def _image_input(tower: keras.Model) -> tuple[str | None, keras.KerasTensor]:
    """(dict key or None, the input tensor) of the tower's image input."""
    if isinstance(tower.input, dict):
        if len(tower.input) != 1:
            raise UserError(f"{tower.name} takes {sorted(tower.input)}: not an image-only tower")
        return next(iter(tower.input.items()))
    return None, tower.input


def _feature_model(tower: keras.Model, converter, size: int) -> keras.Model:
    """Pixels (0..255 floats) -> the converter's normalisation -> tower -> feature vectors."""
    pixels = keras.Input((size, size, 3), name="pixels")
    x = converter(pixels)
    key, _ = _image_input(tower)
    x = tower({key: x} if key else x)
    if len(x.shape) == 3:  # a token sequence: [CLS, (registers,) patches]
        x = ClassToken(name="class_token")(x)
    return keras.Model(pixels, x, name=f"{tower.name}_features")


def tower_units(tower: keras.Model) -> list[keras.layers.Layer]:
    """The tower's layers bottom to top, with containers of repeated blocks opened.

    DINOv2 and ViT keep their transformer blocks inside one encoder layer; CLIP and SigLIP
    list them directly. Either way the result is [embedding, block 0, ..., final norm,
    (pooling head)]: what `--unfreeze top_n_layers=N` and `--layer-decay` count.
    """
    units = []
    for layer in tower.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        units += _repeated_blocks(layer) or [layer]
    return units


def _repeated_blocks(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The direct sub-layers of `layer` when two or more are the same KerasHub block class."""
    children = list(getattr(layer, "_layers", []))  # Keras' tracked sub-layers, in order
    kinds = [type(child) for child in children if type(child).__module__.startswith("keras_hub")]
    if any(kinds.count(kind) > 1 for kind in kinds):
        return children
    return []
