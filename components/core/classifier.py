"""What every kftransfer classifier shares: its loss and metric, its probabilities, predicting.

A two-class model has one sigmoid output, any other a softmax over the classes; everything
downstream (metrics, the report, predict, the SavedModel) sees `[N, classes]`
probabilities through `as_probabilities`, the one place that rule is written.
"""

import keras
import numpy as np
from keras import ops

from kftransfer.components.core.images import image_dataset


def is_binary(model: keras.Model) -> bool:
    """Whether the model has one sigmoid output (two classes)."""
    return model.output_shape[-1] == 1


def num_classes(model: keras.Model) -> int:
    """The number of classes the model tells apart."""
    return 2 if is_binary(model) else model.output_shape[-1]


def as_probabilities(outputs):
    """Model outputs as `[N, classes]` probabilities: a sigmoid column becomes two.

    Works on NumPy arrays and on backend tensors (inside a traced serving function).
    """
    outputs = ops.cast(outputs, "float32")
    return ops.concatenate([1 - outputs, outputs], axis=-1) if outputs.shape[-1] == 1 else outputs


def to_probabilities(outputs) -> np.ndarray:
    """`as_probabilities` as a float64 NumPy array."""
    return np.asarray(ops.convert_to_numpy(as_probabilities(outputs)), dtype=np.float64)


def accuracy_name(model: keras.Model) -> str:
    """The name under which Keras logs this classifier's accuracy (see `compile_classifier`)."""
    return "binary_accuracy" if is_binary(model) else "sparse_categorical_accuracy"


def compile_classifier(model: keras.Model, optimizer, **kwargs) -> None:
    """Compiles with the loss and accuracy metric matching the output layer."""
    model.compile(
        optimizer=optimizer,
        loss="binary_crossentropy" if is_binary(model) else "sparse_categorical_crossentropy",
        metrics=[accuracy_name(model)],
        **kwargs,
    )


def predict_images(
    model: keras.Model, uris: list[str], batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities `[M, classes]` of the images that decode, and their indices `[M]`."""
    batches = image_dataset(uris, [0] * len(uris), model.input_shape[1], batch_size)
    return predict_batches(model, batches)


def predict_batches(model: keras.Model, batches) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of `(images, labels, indices)` batches, and the indices seen."""
    probabilities, indices = [], []
    for images, _, index in batches:
        probabilities.append(to_probabilities(model.predict_on_batch(images)))
        indices.append(index.numpy())
    if not indices:
        return np.zeros((0, num_classes(model))), np.zeros(0, int)
    return np.concatenate(probabilities), np.concatenate(indices)
