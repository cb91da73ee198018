"""Custom Keras layers saved inside kftransfer models (registered for `safe_mode` loading)."""

import keras
from keras import ops

PACKAGE = "kftransfer"

# mode -> (per-channel mean, per-channel std, reverse channels to BGR) on 0..255 input.
PREPROCESSING_MODES = {
    "caffe": ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), True),
    "tf": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5), False),
    "torch": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), False),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False),
}

POOLINGS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Preprocess(keras.layers.Layer):
    """Raw RGB pixels (any dtype, 0..255) to what a backbone's weights expect.

    Modes match `keras.applications.*.preprocess_input`: `caffe` (BGR, minus the ImageNet
    mean), `tf` (to [-1, 1]), `torch` (to [0, 1], minus mean, over std), `none` (the model
    rescales itself, e.g. EfficientNet).

    Args:
        mode: one of `PREPROCESSING_MODES`.
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f"unknown preprocessing {mode!r}: use {sorted(PREPROCESSING_MODES)}")
        self.mode = mode

    def call(self, images):
        """Casts to float and normalises per channel."""
        mean, std, to_bgr = PREPROCESSING_MODES[self.mode]
        images = ops.cast(images, self.compute_dtype)
        if to_bgr:
            images = ops.flip(images, axis=-1)
        return (images - ops.convert_to_tensor(mean, self.compute_dtype)) / ops.convert_to_tensor(
            std, self.compute_dtype
        )

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self):
        """The layer's config, for saving."""
        return {**super().get_config(), "mode": self.mode}


def pooling_layer(pooling: str) -> keras.layers.Layer:
    """The layer turning feature maps into vectors: `avg`, `max` or `flatten`."""
    layers = {
        "avg": keras.layers.GlobalAveragePooling2D,
        "max": keras.layers.GlobalMaxPooling2D,
        "flatten": keras.layers.Flatten,
    }
    if pooling not in layers:
        raise ValueError(f"unknown pooling {pooling!r}: use one of {sorted(layers)}")
    return layers[pooling](name=f"{pooling}_pool")


@keras.saving.register_keras_serializable(package=PACKAGE)
class Mirror(keras.layers.Layer):
    """Images `[B, H, W, C]` mirrored left to right (for test-time flip averaging)."""

    def call(self, images):
        """Reverses the width axis."""
        return ops.flip(images, axis=2)

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassToken(keras.layers.Layer):
    """The first token of a transformer's output `[B, T, D]` (ViT's class token): `[B, D]`."""

    def call(self, tokens):
        """Takes token 0."""
        return tokens[:, 0, :]

    def compute_output_shape(self, input_shape):
        """The input shape without the token axis."""
        return (input_shape[0], input_shape[2])
