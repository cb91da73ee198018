"""Saving and loading `.keras` models anywhere the storage layer reaches."""

import os
import tempfile

import keras

from kftransfer.components.core import layers, storage
from kftransfer.components.core.errors import UserError


def save_model(model: keras.Model, uri: str) -> str:
    """Saves `model` to the `.keras` file `uri` (local or gs://, atomically); returns `uri`.

    The file is for inference and initialisation: the optimizer's state is left out (a
    fine-tuned model's momentum would double its size). Resumable checkpoints are the
    training loop's own.
    """
    if getattr(model, "optimizer", None) is not None:  # the same layers, uncompiled
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, storage.basename(uri))
        model.save(path)
        storage.upload_file(path, uri)
    return uri


def load_model(uri: str) -> keras.Model:
    """Loads the `.keras` file `uri` (local or gs://) for inference, with `safe_mode=True`.

    Raises:
        UserError: the file is missing or not a loadable Keras model.
    """
    assert layers.Preprocess  # custom layers must be registered before loading
    with storage.local_path(uri) as path:
        try:
            return keras.models.load_model(path, compile=False, safe_mode=True)
        except (ValueError, OSError, TypeError) as err:
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise UserError(f"cannot load model {uri}: {detail}") from err
