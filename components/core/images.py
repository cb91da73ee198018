"""Image decoding shared by validation, feature extraction, training and serving.

There is exactly one decode (`decode_rgb`) and one resize (`resize_uint8`), so the
pixels a model is trained on are the pixels it is validated, evaluated and served on.
"""

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from kftransfer.components.core import storage
from kftransfer.components.core.progress import LOGGER


def decode_rgb(data: tf.Tensor | bytes) -> tf.Tensor:
    """Decodes encoded image bytes to a `uint8` tensor `[height, width, 3]`.

    JPEG, PNG, GIF (first frame), BMP and WebP are read whatever their channel count
    (grayscale, RGBA, palette, CMYK, 16-bit), always giving RGB.

    Raises:
        tf.errors.InvalidArgumentError: the bytes are not a decodable image.
    """
    image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def resize_uint8(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resizes `[..., h, w, 3]` images to `size` x `size` as uint8.

    Shrinking uses area averaging (anti-aliased, and as fast as plain bilinear, which
    aliases badly on large photos); enlarging (e.g. 28 px Fashion-MNIST to 128 px) uses
    bilinear interpolation, which area averaging would turn into blocks.
    """
    shape = tf.shape(image)
    shrinking = tf.logical_and(shape[-3] >= size, shape[-2] >= size)
    resized = tf.cond(
        shrinking,
        lambda: tf.image.resize(image, (size, size), method="area"),
        lambda: tf.image.resize(image, (size, size), method="bilinear"),
    )
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def image_dataset(
    uris: list[str],
    labels: list[int],
    image_size: int,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    augment: Callable | None = None,
    read_threads: int = 16,
) -> tf.data.Dataset:
    """Batches of `(images uint8 [B, S, S, 3], labels int32 [B], row indices int32 [B])`.

    Files are read in parallel (local: TF file reads; `gs://`: the storage layer's
    threads, which honour the emulator), decoded by `decode_rgb`, resized by
    `resize_uint8`, batched and prefetched, all AUTOTUNE. A file that can no longer be
    read or decoded is dropped (and logged by TF); callers find it by the row index
    missing from the batches, so nothing crashes. Extraction, fine-tuning and evaluation
    all read images through this function.

    Args:
        uris: image files, local paths or `gs://` URIs.
        labels: one class id per file.
        image_size: the square output size in pixels.
        batch_size: images per batch (the last batch may be smaller).
        shuffle_seed: shuffle the files anew every epoch with this seed; None keeps order.
        augment: a callable applied to each float batch in training only (e.g. a
            `keras.Sequential` of random layers); its output is cast back to uint8.
        read_threads: concurrent reads for `gs://` files.
    """
    indices = np.arange(len(uris), dtype=np.int32)
    labels = np.asarray(labels, dtype=np.int32)
    if any(storage.is_gcs(uri) for uri in uris):
        encoded = _gcs_encoded(uris, labels, indices, shuffle_seed, read_threads)
    else:
        encoded = tf.data.Dataset.from_tensor_slices((list(uris), labels, indices))
        if shuffle_seed is not None:
            encoded = encoded.shuffle(len(uris), seed=shuffle_seed, reshuffle_each_iteration=True)
        encoded = encoded.map(
            lambda uri, label, index: (tf.io.read_file(uri), label, index),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    images = encoded.map(
        lambda data, label, index: (resize_uint8(decode_rgb(data), image_size), label, index),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).ignore_errors(log_warning=True)
    batches = images.batch(batch_size)
    if augment is not None:
        batches = batches.map(
            lambda x, y, i: (_augmented(augment, x), y, i), num_parallel_calls=tf.data.AUTOTUNE
        )
    return batches.prefetch(tf.data.AUTOTUNE)


def _augmented(augment: Callable, images: tf.Tensor) -> tf.Tensor:
    augmented = augment(tf.cast(images, tf.float32), training=True)
    return tf.cast(tf.clip_by_value(tf.round(augmented), 0, 255), tf.uint8)


def _gcs_encoded(uris, labels, indices, shuffle_seed, read_threads) -> tf.data.Dataset:
    """Encoded bytes read by the storage layer's thread pool, in (shuffled) order."""
    epoch = [0]

    def generate():
        order = np.arange(len(uris))
        if shuffle_seed is not None:
            np.random.default_rng([shuffle_seed, epoch[0]]).shuffle(order)
            epoch[0] += 1
        reads = storage.read_many((uris[i] for i in order), threads=read_threads)
        for position, (uri, data) in zip(order, reads, strict=True):
            if isinstance(data, bytes):
                yield data, labels[position], indices[position]
            else:
                LOGGER.warning("skipped %s: %s", uri, data)

    signature = (
        tf.TensorSpec([], tf.string),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature)
