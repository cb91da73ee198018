"""Tiny randomly initialised KerasHub presets, for tests (real presets download from Kaggle).

Each is a vision tower saved with `save_to_preset` next to its family's image converter:
the files a real preset folder holds (config.json, model.weights.h5, image_converter.json,
metadata.json), at 28 px with 2 blocks of width 32.
"""

import keras

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TOWER = {"patch_size": 14, "num_layers": 2, "hidden_dim": 32, "num_heads": 2}
FAMILIES = ("dinov2", "vit", "clip", "siglip")


def write_tiny_preset(folder: str, family: str = "dinov2", size: int = 28, seed: int = 1) -> str:
    """Writes a tiny `family` preset (one of `FAMILIES`) into `folder`; returns `folder`."""
    import keras_hub

    keras.utils.set_random_seed(seed)
    shape, name = (size, size, 3), f"tiny_{family}"
    if family == "dinov2":
        tower = keras_hub.models.DINOV2Backbone(
            **TOWER,
            intermediate_dim=64,
            image_shape=shape,
            position_embedding_shape=shape,
            name=name,
        )
        converter_class = keras_hub.layers.DINOV2ImageConverter
    elif family == "vit":
        tower = keras_hub.models.ViTBackbone(
            image_shape=shape,
            patch_size=14,
            num_layers=2,
            num_heads=2,
            hidden_dim=32,
            mlp_dim=64,
            name=name,
        )
        converter_class = keras_hub.layers.ViTImageConverter
    elif family == "clip":
        tower = keras_hub.models.CLIPVisionEncoder(
            **TOWER, intermediate_dim=64, image_shape=shape, name=name
        )
        converter_class = keras_hub.layers.CLIPImageConverter
    elif family == "siglip":
        tower = keras_hub.models.SigLIPVisionEncoder(
            **TOWER, intermediate_dim=64, image_shape=shape, name=name
        )
        converter_class = keras_hub.layers.SigLIPImageConverter
    else:
        raise ValueError(f"unknown family {family!r}: use one of {FAMILIES}")
    scale = [1 / 255 / s for s in IMAGENET_STD]
    offset = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    tower.save_to_preset(folder)
    converter = converter_class(
        image_size=(size, size), scale=scale, offset=offset, interpolation="bicubic"
    )
    converter.save_to_preset(folder)
    return folder
