"""The EXIF orientation of a JPEG, read and applied with TensorFlow ops.

Phone cameras often store a portrait photo's pixels sideways and an EXIF `Orientation`
tag saying how to turn them; every image viewer applies it, so the user sorting photos
into class folders sees them upright. `tf.io.decode_jpeg` ignores the tag
(tensorflow/tensorflow#8430, #33932), so without this a model would train on sideways
photos and then be served upright camera frames. It is read with graph ops (no Python,
no PIL) so that the same code runs in `tf.data` and in the exported SavedModel's
serving signature, which takes encoded bytes.

The tag is in the JPEG's APP1 `Exif` segment: a TIFF header (byte order, 42, offset of
IFD0), then IFD0's 12-byte entries; entry 0x0112 holds the orientation (1-8, as in
`PIL.ImageOps.exif_transpose`). Anything missing, malformed or out of range reads as 1
(as stored): a broken tag never fails a decode.
"""

import numpy as np
import tensorflow as tf

WINDOW = 1 << 17  # bytes searched: the Exif segment's start must lie in them
SEGMENTS = 3  # segments looked at: Exif follows SOI, or a JFIF APP0 (and one more)
ENTRIES = 64  # IFD0 entries looked at (cameras write ~10-20)
ORIENTATION_TAG = 0x0112
# An APP1 segment's first 10 bytes: FF E1, the length (any), "Exif\0\0".
APP1_EXIF = np.array([0xFF, 0xE1, 0, 0, 0x45, 0x78, 0x69, 0x66, 0, 0])
APP1_EXIF_MASK = np.array([1, 1, 0, 0, 1, 1, 1, 1, 1, 1])
SEGMENT_LENGTH = np.array([0, 0, 256, 1, 0, 0, 0, 0, 0, 0])  # big-endian, after the marker


def _reader(fields: tuple[tuple[int, int], ...], size: int, little: bool) -> np.ndarray:
    """A `[size, len(fields)]` matrix: `bytes @ it` reads each (offset, width) unsigned integer."""
    matrix = np.zeros((size, len(fields)), np.float64)  # float64 holds 32-bit integers exactly
    for column, (offset, width) in enumerate(fields):
        powers = 256.0 ** np.arange(width)
        matrix[offset : offset + width, column] = powers if little else powers[::-1]
    return matrix


# The TIFF header's 8 bytes -> [byte order mark, 42, offset of IFD0] read little-endian,
# then the same big-endian ("II" and "MM" read the same either way round).
HEADER = np.concatenate([_reader(((0, 2), (2, 2), (4, 4)), 8, e) for e in (True, False)], 1)
# An IFD's entry count; an IFD entry's 12 bytes -> [tag, value as a SHORT].
COUNT = {little: _reader(((0, 2),), 2, little)[:, 0] for little in (True, False)}
ENTRY = {little: _reader(((0, 2), (8, 2)), 12, little) for little in (True, False)}
LITTLE_ENDIAN, BIG_ENDIAN = 0x4949, 0x4D4D  # "II", "MM"


def jpeg_orientation(data: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (int32, 1-8) of JPEG bytes `data`; 1 when there is none.

    Straight-line graph ops on a few gathered blocks of bytes, integers read with small
    matrix products: no loop, no branch and few ops, since in a parallel `tf.data` map
    beside a photo's decode each op costs far more than its arithmetic (`bench.exif`).
    """
    head = tf.io.decode_raw(tf.strings.substr(data, 0, WINDOW), tf.uint8)
    size = tf.size(head, out_type=tf.int64)
    head = tf.pad(head, [[0, 1]])  # never empty: reads past the end give 0

    def take(start: tf.Tensor, count: int) -> tf.Tensor:  # float64 bytes
        index = tf.minimum(start + tf.constant(np.arange(count), tf.int64), size)
        return tf.cast(tf.gather(head, index), tf.float64)

    found, tiff, end = _exif_span(take, size)
    orientation = _ifd0_orientation(take, tiff, end)
    valid = found & (orientation >= 1) & (orientation <= 8)
    return tf.where(valid, tf.cast(orientation, tf.int32), 1)


def _exif_span(take, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Finds the APP1 Exif segment among the first `SEGMENTS` after SOI.

    Returns:
        Whether there is one, the offset of its TIFF header and the offset of its end
        (at most `size`).
    """
    positions, blocks = [tf.constant(2, tf.int64)], []
    for _ in range(SEGMENTS):
        blocks.append(take(positions[-1], len(APP1_EXIF)))
        length = tf.cast(tf.reduce_sum(blocks[-1] * SEGMENT_LENGTH), tf.int64)
        positions.append(positions[-1] + 2 + length)  # the length counts its own 2 bytes
    exif = tf.reduce_all(tf.equal(tf.stack(blocks) * APP1_EXIF_MASK, APP1_EXIF), axis=1)
    first = tf.argmax(tf.cast(exif, tf.int32))
    starts = tf.stack(positions)
    tiff = tf.gather(starts, first) + len(APP1_EXIF)
    return tf.reduce_any(exif), tiff, tf.minimum(tf.gather(starts, first + 1), size)


def _ifd0_orientation(take, tiff: tf.Tensor, end: tf.Tensor) -> tf.Tensor:
    """The orientation entry of the IFD0 of the TIFF header at `tiff`; 0 if it has none.

    Only entries that lie wholly before `end` (the Exif segment's) count.
    """
    both = tf.cast(take(tiff, 8)[tf.newaxis] @ HEADER, tf.int64)[0]
    little = tf.equal(both[0], LITTLE_ENDIAN)
    order, magic, offset = tf.unstack(tf.where(little, both[:3], both[3:]))
    ifd = tiff + offset
    block = take(ifd, 2 + 12 * ENTRIES)
    count = tf.reduce_sum(block[:2] * tf.where(little, COUNT[True], COUNT[False]))
    entries = tf.reshape(block[2:], [ENTRIES, 12]) @ tf.where(little, ENTRY[True], ENTRY[False])
    tag, value = tf.unstack(entries, axis=1)
    index = tf.range(ENTRIES, dtype=tf.int64)
    hits = (
        (tf.cast(index, tf.float64) < count)
        & (ifd + 14 + 12 * index <= end)
        & tf.equal(tag, ORIENTATION_TAG)
    )
    valid = (little | tf.equal(order, BIG_ENDIAN)) & tf.equal(magic, 42) & tf.reduce_any(hits)
    return tf.where(valid, tf.gather(value, tf.argmax(tf.cast(hits, tf.int32))), 0.0)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor | int) -> tf.Tensor:
    """Turns a `[h, w, c]` image as its EXIF `orientation` (1-8) says it is displayed.

    The same transposes as `PIL.ImageOps.exif_transpose`: 2 mirror, 3 rotate 180°,
    4 flip, 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90°
    counter-clockwise. Each is one transpose (of a permutation chosen by the
    orientation; 5-8 swap height and width) and one reverse (of the chosen axes): no
    branch, and no `tf.where` over pixels, which costs ~1 ms a photo in a `tf.data` map.
    """
    orientation = tf.convert_to_tensor(orientation, tf.int32)
    permutation = tf.where(orientation >= 5, [1, 0, 2], [0, 1, 2])
    flip = tf.reduce_any(tf.equal(orientation, [3, 4, 7, 8]))  # rows: axis 0
    mirror = tf.reduce_any(tf.equal(orientation, [2, 3, 6, 7]))  # columns: axis 1
    axes = tf.boolean_mask(tf.constant([0, 1]), tf.stack([flip, mirror]))
    return tf.reverse(tf.transpose(image, permutation), axes)
