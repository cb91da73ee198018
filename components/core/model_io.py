"""Saving and loading `.keras` models anywhere the storage layer reaches."""

import os
import tempfile
import zipfile

import keras

from kftransfer.components.core import calibration, layers, layout, storage
from kftransfer.components.core.errors import UserError


def save_model(model: keras.Model, uri: str) -> str:
    """Saves `model` to the `.keras` file `uri` (local or gs://, atomically); returns `uri`.

    The file is for inference and initialisation: the optimizer's state is left out (a
    fine-tuned model's momentum would double its size), and a model trained in mixed
    precision is saved in float32 (`float32_model`). Resumable checkpoints are the
    training loop's own.
    """
    if _is_mixed(model):
        model = float32_model(model)
    elif getattr(model, "optimizer", None) is not None:  # the same layers, uncompiled
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, storage.basename(uri))
        model.save(path)
        storage.upload_file(path, uri)
    return uri


def float32_model(model: keras.Model) -> keras.Model:
    """A copy of `model` (uncompiled, same weights) whose every layer computes in float32.

    Mixed precision is a training device's setting (`--mixed-precision`): a model that
    kept it would compute in float16 wherever it is served, which TFLite's converter
    refuses in every mode and CPUs run slower. The variables of a mixed model are float32
    already, so the weights carry over exactly.
    """
    clone = keras.models.clone_model(model, clone_function=_float32_layer, recursive=True)
    clone.set_weights(model.get_weights())
    return clone


def _float32_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})


def _is_mixed(model: keras.Model) -> bool:
    """Whether any layer, at any depth, computes in another dtype than its variables."""
    return any(
        layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
        for layer in model._flatten_layers(include_self=False)
    )


def load_model(uri: str) -> keras.Model:
    """Loads the `.keras` file `uri` (local or gs://) for inference, with `safe_mode=True`.

    Raises:
        UserError: the file is missing or not a loadable Keras model.
    """
    assert layers.Preprocess and calibration.TemperatureScaling  # registered before loading
    with storage.local_path(uri) as path:
        return load_keras_file(path, uri)


def _holds_keras_hub_layers(path: str) -> bool:
    """Whether the `.keras` archive's config names a KerasHub class (`keras_hub>...`)."""
    with zipfile.ZipFile(path) as archive:
        try:
            return b'"keras_hub>' in archive.read(layout.KERAS_ARCHIVE_CONFIG)
        except KeyError:
            return False


def load_keras_file(path: str, uri: str, what: str = "model") -> keras.Model:
    """`keras.models.load_model(path)` in safe mode, its failures as one line naming `uri`.

    Raises:
        UserError: not a `.keras` archive (corrupt, truncated, another format), a model that
            safe mode refuses (a Lambda layer: arbitrary code), or any other load failure.
    """
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"cannot load {what} {uri}: not a Keras .keras file (a zip archive); it is corrupt, "
            "truncated or another format: export it again with model.save('name.keras')"
        )
    if _holds_keras_hub_layers(path):
        from kftransfer.components.core.hub_backbones import import_keras_hub

        import_keras_hub()  # registers its layers, so safe mode can deserialise them
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad file
        text = str(err)
        if "safe_mode" in text or "Lambda" in text:
            raise UserError(
                f"cannot load {what} {uri}: it holds a Lambda layer (Python code), which Keras' "
                "safe mode refuses to load; rebuild it without Lambda layers (use a registered "
                "custom layer instead)"
            ) from err
        detail = (text.strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"cannot load {what} {uri}: {detail}") from err
