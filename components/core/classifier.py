"""What every kftransfer classifier shares: its loss and metric, its probabilities, predicting.

A two-class model has one sigmoid output, any other a softmax over the classes; everything
downstream (metrics, the report, predict, the SavedModel) sees `[N, classes]`
probabilities through `as_probabilities`, the one place that rule is written.
"""

from collections.abc import Iterator

import keras
import numpy as np
from keras import ops

from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.layers import Mirror


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


@keras.saving.register_keras_serializable(package="kftransfer")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy of integer labels against label-smoothed targets.

    Args:
        num_classes: the number of classes.
        smoothing: the share of the target spread evenly over every class.
    """

    def __init__(self, num_classes: int, smoothing: float, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.smoothing = num_classes, smoothing

    def call(self, labels, probabilities):
        """Per-example loss."""
        labels = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), self.num_classes)
        return keras.losses.categorical_crossentropy(
            labels, probabilities, label_smoothing=self.smoothing
        )

    def get_config(self):
        """The loss's config, for saving."""
        return {**super().get_config(), "num_classes": self.num_classes,
                "smoothing": self.smoothing}  # fmt: skip


def classifier_loss(binary: bool, num_classes: int, smoothing: float = 0.0) -> keras.losses.Loss:
    """Cross-entropy on integer labels, with label smoothing `smoothing` (0 for none).

    Smoothed targets are `1 - smoothing` on the given class plus `smoothing / classes` on
    every class (Szegedy et al. 2016).
    """
    if binary:
        return keras.losses.BinaryCrossentropy(label_smoothing=smoothing)
    if not smoothing:
        return keras.losses.SparseCategoricalCrossentropy()
    return SmoothedSparseCrossentropy(num_classes, smoothing)


def compile_classifier(model: keras.Model, optimizer, smoothing: float = 0.0, **kwargs) -> None:
    """Compiles with the loss (label smoothing `smoothing`) and accuracy matching the output."""
    model.compile(
        optimizer=optimizer,
        loss=classifier_loss(is_binary(model), num_classes(model), smoothing),
        metrics=[accuracy_name(model)],
        **kwargs,
    )


def with_flip_averaging(model: keras.Model) -> keras.Model:
    """`model` answering the mean of its probabilities on the image and on its mirror image."""
    images = keras.Input(model.input_shape[1:], dtype=model.inputs[0].dtype, name="images")
    both = [_single(model(images)), _single(model(Mirror(name="mirror")(images)))]
    return keras.Model(images, keras.layers.Average(name="flip_average")(both), name=model.name)


def _single(outputs):
    """A one-output model's output (a reloaded functional model may return a list of one)."""
    return outputs[0] if isinstance(outputs, list | tuple) else outputs


def predict_images(
    model: keras.Model, uris: list[str], batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities `[M, classes]` of the images that decode, and their indices `[M]`."""
    return predict_batches(model, image_batches(model, uris, batch_size))


def image_batches(model: keras.Model, uris: list[str], batch_size: int = 32, refuse=None):
    """`(images, labels, indices)` batches of `uris` at the model's input size, in order.

    `refuse`: see `images.image_dataset` (it screens `gs://` files' bytes before decoding).
    """
    return image_dataset(uris, [0] * len(uris), model.input_shape[1], batch_size, refuse=refuse)


def predict_batches(model: keras.Model, batches) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of `(images, labels, indices)` batches, and the indices seen."""
    done = list(batch_probabilities(model, batches))
    if not done:
        return np.zeros((0, num_classes(model))), np.zeros(0, int)
    return np.concatenate([p for p, _ in done]), np.concatenate([i for _, i in done])


def batch_probabilities(model: keras.Model, batches) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Class probabilities `[B, classes]` and row indices `[B]`, batch by batch, as computed."""
    for images, _, index in batches:
        yield to_probabilities(model.predict_on_batch(images)), index.numpy()
