"""Backbones: ImageNet models from the registry, and bring-your-own `.keras` models.

A backbone turns raw `uint8` RGB images into feature vectors. The registry
(`registry.py`, plain data) names each built-in entry's `keras.applications` constructor,
sizes, preprocessing and default unfreeze point; a complete `.keras` model file is a
backbone too (`load_custom_backbone`).
"""

import hashlib
import warnings
from dataclasses import dataclass

import keras
import numpy as np

from kftransfer.components.core import storage
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.layers import POOLINGS, PREPROCESSING_MODES
from kftransfer.components.core.model_io import load_keras_file
from kftransfer.components.core.registry import (
    CUSTOM_UNFREEZE,
    REGISTRY,
    BackboneSpec,
    is_custom,
    is_hub,
)


@dataclass
class Backbone:
    """A ready backbone: the feature model of raw images, and what identifies its output.

    Attributes:
        name: registry name, or the `.keras` URI of a bring-your-own model.
        base: the convolutional model (preprocessed float images -> feature maps or vectors).
        preprocessing: the preprocessing mode applied before `base`.
        image_size: the input size in pixels.
        unfreeze: the default fine-tuning policy.
        fingerprint: sha256 of the weight values (any change of weights changes it).
        units: the layers an unfreeze policy and layer decay count, bottom to top; `None`
            for `base.layers` (KerasHub towers open their encoder's blocks, `.keras`
            models their nested models).
    """

    name: str
    base: keras.Model
    preprocessing: str
    image_size: int
    unfreeze: str
    fingerprint: str
    units: list[keras.layers.Layer] | None = None

    def layers(self) -> list[keras.layers.Layer]:
        """The units of fine-tuning, bottom to top (see `units`)."""
        return self.units if self.units is not None else self.base.layers


def resolve_size(backbone: str, image_size: int) -> int:
    """The input size to use: `image_size`, or the backbone's default when it is 0."""
    spec = REGISTRY.get(backbone)
    if image_size:
        if spec and image_size < spec.min_size:
            raise UserError(
                f"--image-size {image_size} is below {backbone}'s minimum {spec.min_size}"
            )
        return image_size
    if spec is None:
        raise UserError(f"--image-size is required for the custom backbone {backbone}")
    return spec.default_size


def load_backbone(
    name: str,
    weights: str = "imagenet",
    image_size: int = 0,
    feature_layer: str = "",
    preprocessing: str = "",
) -> Backbone:
    """Builds a backbone by registry name, or from a `.keras` file (local or gs://).

    Args:
        name: a registry name (see `REGISTRY`), the URI of a complete `.keras` model, or
            `keras_hub:PRESET` (see `hub_backbones`).
        weights: `imagenet` (Keras download and cache), `none` (random, seeded by the
            caller), or the URI of a `.weights.h5` / `.keras` file for this architecture.
        image_size: input size in pixels; 0 for the backbone's default.
        feature_layer: bring-your-own only: the layer whose output are the features.
        preprocessing: bring-your-own only: the preprocessing mode (default `tf`).

    Raises:
        UserError: unknown name, unreadable or mismatched weights, bad layer name.
    """
    if is_hub(name):
        from kftransfer.components.core.hub_backbones import load_hub_backbone

        return load_hub_backbone(name, weights, image_size)
    if is_custom(name):
        return load_custom_backbone(name, image_size, feature_layer, preprocessing or "tf")
    if name not in REGISTRY:
        valid = ", ".join(sorted(REGISTRY))
        raise UserError(f"unknown backbone {name!r}: use one of {valid}, or a .keras model URI")
    spec = REGISTRY[name]
    size = resolve_size(name, image_size)
    base = _build_application(name, spec, weights, size)
    return Backbone(name, base, spec.preprocessing, size, spec.unfreeze, fingerprint(base))


def _build_application(name: str, spec: BackboneSpec, weights: str, size: int) -> keras.Model:
    constructor = getattr(keras.applications, spec.application)
    kwargs = {"include_top": False, "input_shape": (size, size, 3)}
    if weights == "none":
        return constructor(weights=None, **kwargs)
    if weights == "imagenet":
        try:
            return constructor(weights="imagenet", **kwargs)
        except Exception as err:  # noqa: BLE001 - any download failure means the same to the user
            raise UserError(
                f"cannot download the ImageNet weights of {name} ({type(err).__name__}): "
                f"offline? pass --weights FILE (a {name} .weights.h5) or --weights none"
            ) from err
    model = constructor(weights=None, **kwargs)
    with storage.local_path(weights) as path:
        try:
            load_weights_strictly(model, path)
        except Exception as err:  # noqa: BLE001 - Keras raises several types for a mismatch
            detail = (str(err).strip().splitlines() or [""])[0][:160]
            raise UserError(
                f"weights file {weights} does not fit backbone {name} without its top "
                f"({detail}); give a {name} include_top=False weights file"
            ) from err
    return model


def load_weights_strictly(model: keras.Model, path: str) -> None:
    """`model.load_weights(path)`, failing where Keras would only warn and keep random weights.

    Raises:
        ValueError: some of the model's weights are missing from, or do not fit, the file.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(path)
    for warning in caught:
        text = str(warning.message)
        if "freshly-initialized" in text or "Skipping" in text or "mismatch" in text.lower():
            raise ValueError(text)


def load_custom_backbone(
    uri: str, image_size: int, feature_layer: str, preprocessing: str
) -> Backbone:
    """A complete Keras model (e.g. domain-pretrained) truncated at its feature layer.

    The default feature layer is the last global pooling layer (the one before the
    classifier). The model is loaded with `safe_mode=True`.
    """
    if preprocessing not in PREPROCESSING_MODES:
        raise UserError(
            f"--preprocessing {preprocessing!r}: use one of {', '.join(PREPROCESSING_MODES)}"
        )
    with storage.local_path(uri) as path:
        model = load_keras_file(path, uri, "backbone model")
    layer = _feature_layer(model, uri, feature_layer)
    base = keras.Model(model.inputs, layer.output, name="custom_backbone")
    native = model.input_shape[1]
    size = image_size or native
    if not size:
        raise UserError(f"{uri} takes any input size: pass --image-size")
    if native and size != native:
        raise UserError(f"{uri} takes {native}x{native} images: use --image-size {native} or 0")
    units = opened_layers(base)
    return Backbone(uri, base, preprocessing, size, CUSTOM_UNFREEZE, fingerprint(base), units)


def opened_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers bottom to top, a nested model's (`MobileNet(...)(x)`) opened.

    A model built the usual Keras transfer-learning way holds its pretrained base as one
    layer: counted as one, `--unfreeze top_n_layers=20` would train all of it.
    """
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers += [
                inner
                for inner in opened_layers(layer)
                if not isinstance(inner, keras.layers.InputLayer)
            ]
        else:
            layers.append(layer)
    return layers


def _feature_layer(model: keras.Model, uri: str, name: str) -> keras.layers.Layer:
    if name:
        try:
            return model.get_layer(name)
        except ValueError as err:
            raise UserError(f"{uri} has no layer {name!r}: check --feature-layer") from err
    pools = [layer for layer in model.layers if isinstance(layer, POOLINGS)]
    if not pools:
        raise UserError(f"{uri} has no global pooling layer: name one with --feature-layer")
    return pools[-1]


def fingerprint(model: keras.Model) -> str:
    """sha256 over the shapes and values of every weight: equal iff the weights are equal."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.path}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
