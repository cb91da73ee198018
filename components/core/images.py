"""Image decoding shared by validation, feature extraction, training and serving.

There is exactly one decode-and-resize (`decode_resized`), so the pixels a model is
trained on are the pixels it is evaluated and served on. Large JPEGs (camera photos) are
decoded with libjpeg's DCT scaling at the smallest scale (1/8, 1/4, 1/2 or full) whose
short side still covers the target size, then area-averaged like everything else:
decoding a 12-megapixel photo at 1/8 skips most of the inverse DCT and the memory of the
full image, and the anti-aliased resize that follows never upsamples. Camera photos
stored sideways are turned upright by their EXIF orientation, as viewers show them.
`DECODE_VERSION` names this; the feature and pixel caches are keyed by it.
"""

import hashlib
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from kftransfer.components.core import storage
from kftransfer.components.core.exif import apply_orientation, jpeg_orientation
from kftransfer.components.core.progress import LOGGER

DECODE_VERSION = "dct-area-exif-2"  # change it when decode_resized's pixels change
JPEG_SCALES = (8, 4, 2)  # the DCT scalings libjpeg offers, largest first


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


def decoded_size(data: bytes) -> tuple[int, int]:
    """`(height, width)` of an image, after checking that all of it decodes.

    A JPEG is decoded at 1/8 scale: libjpeg still reads every entropy-coded block (so
    truncation and corruption fail as in a full decode) but skips most of the inverse
    DCT (about 1.4x faster on camera photos: `bench.photos`' ceiling line).

    Raises:
        tf.errors.InvalidArgumentError: the bytes are not a decodable image.
    """
    if tf.io.is_jpeg(data):
        tf.io.decode_jpeg(data, channels=3, ratio=JPEG_SCALES[0])
        height, width, _ = tf.image.extract_jpeg_shape(data).numpy()
        return int(height), int(width)
    shape = decode_rgb(data).shape
    return int(shape[0]), int(shape[1])


def decode_resized(data: tf.Tensor | bytes, size: int) -> tf.Tensor:
    """Decodes encoded image bytes straight to a `uint8 [size, size, 3]` tensor.

    A JPEG is decoded at the smallest DCT scale whose short side is still at least `size`
    (`jpeg_scale`); other formats in full (`decode_rgb`). Then `resize_uint8`, and a
    JPEG is turned upright as its EXIF orientation says (`exif`; on the small square,
    which gives the pixels of turning the photo first, to within one level of rounding,
    for a fraction of the work).

    Raises:
        tf.errors.InvalidArgumentError: the bytes are not a decodable image.
    """
    data = tf.convert_to_tensor(data, tf.string)
    image, orientation = tf.cond(
        tf.io.is_jpeg(data),
        lambda: (decode_jpeg_scaled(data, size), jpeg_orientation(data)),
        lambda: (decode_rgb(data), tf.constant(1)),
    )
    image.set_shape([None, None, 3])
    square = apply_orientation(resize_uint8(image, size), orientation)
    square.set_shape([size, size, 3])
    return square


def decode_jpeg_scaled(data: tf.Tensor, size: int) -> tf.Tensor:
    """JPEG bytes decoded at the smallest DCT scale still covering `size` (`jpeg_scale`).

    The pixels as stored: no resize, no EXIF orientation.
    """
    scale = jpeg_scale(tf.image.extract_jpeg_shape(data), size)
    branches = [
        lambda ratio=ratio: tf.io.decode_jpeg(data, channels=3, ratio=ratio)
        for ratio in (1, *JPEG_SCALES)
    ]  # decode_jpeg's ratio is an attribute: one branch per scale
    return tf.switch_case(scale, branches)


def jpeg_scale(shape: tf.Tensor, size: int) -> tf.Tensor:
    """The branch index of the DCT scale to decode at: 0 full, 1 for 1/8, 2 for 1/4, 3 for 1/2.

    The smallest scale whose short side still covers `size`, so nothing is upsampled.
    """
    short = tf.minimum(shape[0], shape[1])
    index = tf.constant(0)
    for i, ratio in reversed(list(enumerate(JPEG_SCALES, start=1))):
        index = tf.where(short >= ratio * size, i, index)
    return index


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
    refuse: Callable[[str, bytes], str] | None = None,
    sha256s: list[str] | None = None,
) -> tf.data.Dataset:
    """Batches of `(images uint8 [B, S, S, 3], labels int32 [B], row indices int32 [B])`.

    Files are read in parallel (local: TF file reads; `gs://`: the storage layer's
    threads, which honour the emulator), decoded and resized by `decode_resized`, batched
    and prefetched, all AUTOTUNE. A file that can no longer be
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
        refuse: for `gs://` files, a function of a file's URI and bytes that says why it
            must not be decoded ('' to decode it); a refused file is dropped, as an
            unreadable one is, but not logged (the caller says why). Local files are read
            inside TensorFlow and never reach it: check them before.
        sha256s: each file's content hash as the split recorded it. A file whose bytes
            hash otherwise changed after the split: it is dropped and logged, so that
            what it decodes to is never kept under the other content's hash (the feature
            and pixel caches are keyed by it, for every later run).
    """
    indices = np.arange(len(uris), dtype=np.int32)
    labels = np.asarray(labels, dtype=np.int32)
    changed = _changed_since_split(uris, sha256s) if sha256s is not None else None
    if any(storage.is_gcs(uri) for uri in uris):
        refused = _either(changed, refuse) if changed else refuse
        encoded = _gcs_encoded(uris, labels, indices, shuffle_seed, read_threads, refused)
        images = encoded.map(
            lambda data, label, index: (decode_resized(data, image_size), label, index),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        paths = [os.fsencode(uri) for uri in uris]  # a name that is not UTF-8 as its bytes
        files = tf.data.Dataset.from_tensor_slices((paths, labels, indices))
        if shuffle_seed is not None:
            files = files.shuffle(len(uris), seed=shuffle_seed, reshuffle_each_iteration=True)
        images = _local_images(files, image_size, changed)
    images = images.ignore_errors(log_warning=True)
    return augmented_batches(images, batch_size, augment)


def _local_images(files: tf.data.Dataset, size: int, changed) -> tf.data.Dataset:
    """`(path, label, index)` -> `(image, label, index)`, read and decoded in one function.

    One hand-off per image; the files `changed(path, bytes)` refuses are left out.
    """
    if changed is None:
        return files.map(
            lambda uri, label, index: (decode_resized(tf.io.read_file(uri), size), label, index),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def unchanged(path: bytes, data: bytes) -> bool:
        return not changed(os.fsdecode(path), data)

    def read(uri, label, index):
        data = tf.io.read_file(uri)
        keep = tf.numpy_function(unchanged, [uri, data], tf.bool, stateful=False)  # parallel
        return decode_resized(data, size), label, index, keep

    checked = files.map(read, num_parallel_calls=tf.data.AUTOTUNE)
    return checked.filter(lambda *row: row[3]).map(
        lambda image, label, index, _: (image, label, index)
    )


def augmented_batches(
    rows: tf.data.Dataset, batch_size: int, augment: Callable | None
) -> tf.data.Dataset:
    """`(image, label, index)` rows -> prefetched batches, augmented when `augment` is given."""
    batches = rows.batch(batch_size)
    if augment is not None:
        batches = batches.map(
            lambda x, y, i: (_augmented(augment, x), y, i), num_parallel_calls=tf.data.AUTOTUNE
        )
    return batches.prefetch(tf.data.AUTOTUNE)


def _augmented(augment: Callable, images: tf.Tensor) -> tf.Tensor:
    augmented = augment(tf.cast(images, tf.float32), training=True)
    return tf.cast(tf.clip_by_value(tf.round(augmented), 0, 255), tf.uint8)


def _changed_since_split(uris: list[str], sha256s: list[str]) -> Callable[[str, bytes], str]:
    """A `refuse` of the files whose bytes no longer hash to the split's sha256 (logged)."""
    expected = dict(zip(uris, sha256s, strict=True))

    def changed(uri: str, data: bytes) -> str:
        actual = hashlib.sha256(data).hexdigest()
        if actual == expected[uri]:
            return ""
        LOGGER.warning(
            "skipped %s: changed after the split (sha256 %s..., the split's %s...); rerun "
            "the split to use its new content",
            *(uri, actual[:12], expected[uri][:12]),
        )
        return "changed after the split"

    return changed


def _either(first: Callable[[str, bytes], str], second) -> Callable[[str, bytes], str]:
    """The reason `first` refuses a file, else `second`'s (none when it is None)."""
    return lambda uri, data: first(uri, data) or (second(uri, data) if second else "")


def _gcs_encoded(uris, labels, indices, shuffle_seed, read_threads, refuse) -> tf.data.Dataset:
    """Encoded bytes read by the storage layer's thread pool, in (shuffled) order."""
    refuse = refuse or (lambda _uri, _data: "")
    epoch = [0]

    def generate():
        order = np.arange(len(uris))
        if shuffle_seed is not None:
            np.random.default_rng([shuffle_seed, epoch[0]]).shuffle(order)
            epoch[0] += 1
        reads = storage.read_many((uris[i] for i in order), threads=read_threads)
        for position, (uri, data) in zip(order, reads, strict=True):
            if not isinstance(data, bytes):
                LOGGER.warning("skipped %s: %s", uri, data)
            elif not refuse(uri, data):
                yield data, labels[position], indices[position]

    signature = (
        tf.TensorSpec([], tf.string),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature)
