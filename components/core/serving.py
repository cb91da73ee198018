"""The exported SavedModel's signatures, and the split's header checks as TensorFlow ops.

TF Serving and KServe run the SavedModel without Python, so what `validation` judges from
a header with Pillow, `serving_default` judges from the bytes in the graph: an image with
more pixels than the cap (a decompression bomb: a 0.4 MB PNG of 20000x20000 px holds
1.2 GB decoded), or a BMP of a palette or of 1 bit per pixel, which TensorFlow decodes
wrong. Pixels are counted as `validation.decoded_pixels` counts them: a baseline JPEG at
1/8 of each side (the scale a photo is decoded at), a progressive one in full. The frames
of an animated GIF are not counted here (that needs a walk through all of them); each
frame's size is.
"""

import keras
import tensorflow as tf

from kftransfer.components.core.classifier import as_probabilities
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.images import JPEG_SCALES, decode_resized
from kftransfer.components.core.layout import UNKNOWN
from kftransfer.components.core.validation import PALETTE_BMP_HINT, PALETTE_BMP_MODES

SIZE_FIELDS_BYTES = 30  # the first bytes, where the PNG, GIF, BMP and WebP sizes are
PROGRESSIVE_SOF = (0xC2, 0xC6, 0xCA, 0xCE)  # start-of-frame markers of progressive JPEGs
OTHER_SOF = (0xC0, 0xC1, 0xC3, 0xC5, 0xC7, 0xC9, 0xCB, 0xCD, 0xCF)
JPEG_SEGMENTS = 1000  # at most this many segments are walked to find the frame header


def write_saved_model(
    model: keras.Model,
    labels: list[str],
    path: str,
    min_confidence: float = 0.0,
    max_pixels: int = SplitConfig().max_image_pixels,
) -> None:
    """A SavedModel whose `serving_default` maps encoded image bytes to probabilities and labels.

    Signatures: `serving_default(image_bytes: string[N])` -> `probabilities` `[N, classes]`
    and `label` `[N]` (`UNKNOWN` where the top probability is below `min_confidence`);
    `serve_images(images: uint8[N, S, S, 3])` -> `probabilities`. Decoding and resizing
    are the training pipeline's own (`images.decode_resized`). Before decoding, each
    image's header is judged as the split judges it (`header_problem`): one over
    `max_pixels` or a palette BMP fails the request, naming why.
    """
    size = model.input_shape[1]
    names = tf.constant(labels)

    def probabilities(images):
        return as_probabilities(model(images, training=False))

    def checked_decode(data):
        problem = header_problem(data, max_pixels)
        with tf.control_dependencies([tf.debugging.Assert(problem == "", [problem])]):
            return decode_resized(tf.identity(data), size)

    def serve_bytes(image_bytes):
        images = tf.map_fn(
            checked_decode,
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
        )
        probs = probabilities(images)
        label = tf.gather(names, tf.argmax(probs, axis=1))
        sure = tf.reduce_max(probs, axis=1) >= min_confidence
        return {"probabilities": probs, "label": tf.where(sure, label, UNKNOWN)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    images_spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")
    archive.add_endpoint("serving_default", serve_bytes, [bytes_spec])
    archive.add_endpoint(
        "serve_images", lambda images: {"probabilities": probabilities(images)}, [images_spec]
    )
    archive.write_out(path, verbose=False)


def header_problem(data: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """Why encoded image bytes must not be decoded, as a string tensor ('' when they may).

    `decompression_bomb: WxH px > CAP px cap` or `unsupported_format: a BMP of a colour
    palette ...`, as `validation` words them; bytes of no known header give ''.
    """
    data = tf.convert_to_tensor(data, tf.string)
    padding = b"\0" * SIZE_FIELDS_BYTES  # so that short data gives zeros, not a failed op
    first = tf.strings.join([tf.strings.substr(data, 0, SIZE_FIELDS_BYTES), padding])
    first = tf.strings.substr(first, 0, SIZE_FIELDS_BYTES)
    width, height, pixels, bmp_bits, jpeg, progressive = _dims(data, first)
    size = tf.strings.format("{}x{} px", (width, height))
    scale = tf.strings.format(f" (decoded at 1/{JPEG_SCALES[0]} scale: {{}} px)", pixels)
    holds = " (a progressive JPEG: decoding holds all of its coefficients)"
    size += tf.where(jpeg, tf.where(progressive, holds, scale), "")
    bomb = tf.strings.join(["decompression_bomb: ", size, f" > {max_pixels} px cap"])
    kinds = {1: PALETTE_BMP_MODES["1"], 8: PALETTE_BMP_MODES["P"]}  # 4 and 8 bits: a palette
    kind = tf.where(bmp_bits == 1, kinds[1], kinds[8])
    palette = tf.strings.join(
        ["unsupported_format: a BMP of ", kind, f" is not supported ({PALETTE_BMP_HINT})"]
    )
    misread = tf.logical_and(bmp_bits > 0, bmp_bits <= 8)
    return tf.where(pixels > max_pixels, bomb, tf.where(misread, palette, ""))


def _dims(data: tf.Tensor, first: tf.Tensor):
    """(width, height, decoded pixels, a BMP's bits per pixel (else 0), a JPEG, progressive).

    Zero sizes when the header is of no known format. `first`: the first SIZE_FIELDS_BYTES of
    `data`, padded with zeros.
    """
    head = tf.cast(tf.io.decode_raw(first, tf.uint8), tf.int64)
    zero = tf.constant(0, tf.int64)
    is_bmp = tf.strings.substr(first, 0, 2) == b"BM"
    width, height = zero, zero
    for found, dims in _header_dims(first, head):
        width = tf.where(found, dims[0], width)
        height = tf.where(found, dims[1], height)
    pixels = width * height
    jpeg = tf.io.is_jpeg(data)
    jpeg_width, jpeg_height, jpeg_pixels, progressive = tf.cond(
        jpeg, lambda: _jpeg_dims(data), lambda: (zero, zero, zero, tf.constant(False))
    )
    width = tf.where(jpeg, jpeg_width, width)
    height = tf.where(jpeg, jpeg_height, height)
    pixels = tf.where(jpeg, jpeg_pixels, pixels)
    bmp_bits = tf.where(is_bmp, _le(head, 28, 2), zero)
    return width, height, pixels, bmp_bits, jpeg, progressive


def _le(head: tf.Tensor, start: int, count: int) -> tf.Tensor:
    return sum(head[start + i] * 256**i for i in range(count))


def _be(head: tf.Tensor, start: int, count: int) -> tf.Tensor:
    return sum(head[start + i] * 256 ** (count - 1 - i) for i in range(count))


def _header_dims(first: tf.Tensor, head: tf.Tensor):
    """`(is this format, (width, height))` of PNG, GIF, BMP and WebP, from fixed offsets."""
    bmp_height = _le(head, 22, 4)
    bmp_height = tf.where(bmp_height >= 2**31, 2**32 - bmp_height, bmp_height)  # top-down
    return (
        (tf.strings.substr(first, 0, 4) == b"\x89PNG", (_be(head, 16, 4), _be(head, 20, 4))),
        (tf.strings.substr(first, 0, 3) == b"GIF", (_le(head, 6, 2), _le(head, 8, 2))),
        (tf.strings.substr(first, 0, 2) == b"BM", (_le(head, 18, 4), bmp_height)),
        (
            tf.logical_and(
                tf.strings.substr(first, 0, 4) == b"RIFF", tf.strings.substr(first, 8, 4) == b"WEBP"
            ),
            _webp_dims(first, head),
        ),
    )


def _webp_dims(first: tf.Tensor, head: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A WebP's size from its first chunk: lossy `VP8 `, lossless `VP8L`, extended `VP8X`."""
    chunk = tf.strings.substr(first, 12, 4)
    lossy = (_le(head, 26, 2) % 2**14, _le(head, 28, 2) % 2**14)  # 14 bits, 2 of scale
    lossless_bits = _le(head, 21, 4)
    lossless = (1 + lossless_bits % 2**14, 1 + (lossless_bits // 2**14) % 2**14)
    extended = (1 + _le(head, 24, 3), 1 + _le(head, 27, 3))
    zero = tf.constant(0, tf.int64)
    return tuple(
        tf.where(
            chunk == "VP8 ", a, tf.where(chunk == "VP8L", b, tf.where(chunk == "VP8X", c, zero))
        )
        for a, b, c in zip(lossy, lossless, extended, strict=True)
    )


def _jpeg_dims(data: tf.Tensor):
    """A JPEG's width, height, decoded pixels (1/8 of each side unless progressive), progressive."""
    shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
    height, width = shape[0], shape[1]
    scale = JPEG_SCALES[0]
    scaled = ((width + scale - 1) // scale) * ((height + scale - 1) // scale)
    progressive = _progressive(data)
    return width, height, tf.where(progressive, width * height, scaled), progressive


def _progressive(data: tf.Tensor) -> tf.Tensor:
    """Whether a JPEG's frame header is a progressive one, walking its segments to it."""
    raw = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)
    end = tf.shape(raw)[0]

    def walking(position, marker):
        return tf.logical_and(position + 3 < end, marker == 0)

    def step(position, marker):
        if_ff = raw[position] == 0xFF
        code = raw[tf.minimum(position + 1, end - 1)]
        length = (
            raw[tf.minimum(position + 2, end - 1)] * 256 + raw[tf.minimum(position + 3, end - 1)]
        )
        is_sof = tf.reduce_any(tf.equal(code, PROGRESSIVE_SOF + OTHER_SOF))
        fill = tf.logical_or(code == 0xFF, tf.logical_and(code >= 0xD0, code <= 0xD9))
        next_position = tf.where(fill, position + 1, position + 2 + length)
        marker = tf.where(tf.logical_not(if_ff), -1, tf.where(is_sof, code, 0))
        return tf.where(is_sof, position, next_position), marker

    _, marker = tf.while_loop(
        walking, step, (tf.constant(2), tf.constant(0)), maximum_iterations=JPEG_SEGMENTS
    )
    return tf.reduce_any(tf.equal(marker, PROGRESSIVE_SOF))
