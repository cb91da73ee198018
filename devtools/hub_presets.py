"""Tiny randomly initialised KerasHub presets, for tests (real presets download from Kaggle).

Each is a vision tower saved with `save_to_preset` next to its family's image converter:
the files a real preset folder holds (config.json, model.weights.h5, image_converter.json,
metadata.json), by default at 28 px with 2 blocks of width 32.
"""

import keras

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TOWER = {"patch_size": 14, "num_layers": 2, "hidden_dim": 32, "num_heads": 2}
FAMILIES = ("dinov2", "vit", "clip", "siglip")
CONVERTERS = {
    "dinov2": "DINOV2ImageConverter",
    "vit": "ViTImageConverter",
    "clip": "CLIPImageConverter",
    "siglip": "SigLIPImageConverter",
}


def write_tiny_preset(
    folder: str, family: str = "dinov2", size: int = 28, seed: int = 1, **architecture
) -> str:
    """Writes a random `family` preset (one of `FAMILIES`) into `folder`; returns `folder`.

    Args:
        folder: where the preset's files go.
        family: the tower's family.
        size: the image size it is stored at.
        seed: the seed of its random weights.
        **architecture: overrides of the tiny tower's sizes (`num_layers`, `hidden_dim`,
            `num_heads`, `intermediate_dim`; ViT: `mlp_dim`), e.g. `dinov2_small`'s.
    """
    import keras_hub

    keras.utils.set_random_seed(seed)
    width = {"mlp_dim": 64} if family == "vit" else {"intermediate_dim": 64}
    sizes = {**TOWER, **width, **architecture, "image_shape": (size, size, 3)}
    name = f"tiny_{family}"
    models = keras_hub.models
    if family == "dinov2":
        shape = sizes["image_shape"]
        tower = models.DINOV2Backbone(**sizes, position_embedding_shape=shape, name=name)
    elif family == "vit":
        tower = models.ViTBackbone(**sizes, name=name)
    elif family == "clip":
        tower = models.CLIPVisionEncoder(**sizes, name=name)
    elif family == "siglip":
        tower = models.SigLIPVisionEncoder(**sizes, name=name)
    else:
        raise ValueError(f"unknown family {family!r}: use one of {FAMILIES}")
    scale = [1 / 255 / s for s in IMAGENET_STD]
    offset = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    tower.save_to_preset(folder)
    converter = getattr(keras_hub.layers, CONVERTERS[family])(
        image_size=(size, size), scale=scale, offset=offset, interpolation="bicubic"
    )
    converter.save_to_preset(folder)
    return folder
