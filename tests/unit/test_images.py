"""The one shared decode: DCT-scaled JPEG decoding, and the same pixels in training and serving."""

import io
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from devtools.imagegen import with_exif_orientation
from kftransfer.components.core.images import (
    decode_resized,
    decode_rgb,
    image_dataset,
    jpeg_scale,
    resize_uint8,
)
from kftransfer.components.core.serving import write_saved_model


def photo_jpeg(width: int, height: int) -> bytes:
    """A smooth, photo-like JPEG (gradients and a disc), `width` x `height`."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    disc = ((x - width / 2) ** 2 + (y - height / 3) ** 2) < (height / 4) ** 2
    pixels = np.stack([255 * x / width, 255 * y / height, 200 * disc + 30], axis=-1)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.mark.parametrize(
    ("height", "width", "size", "ratio"),
    [
        (3000, 4000, 224, 8),  # 375 >= 224: a camera photo decodes at 1/8
        (1000, 1500, 224, 4),  # 1/8 would give 125 < 224
        (500, 500, 224, 2),
        (300, 400, 224, 1),  # nothing to skip
        (4000, 3000, 299, 8),  # portrait: the short side decides
        (2000, 3000, 299, 4),
    ],
)
def test_jpeg_scale_is_the_smallest_that_still_covers_the_size(height, width, size, ratio):
    branch = int(jpeg_scale(tf.constant([height, width, 3]), size))
    assert (1, 8, 4, 2)[branch] == ratio


def test_a_large_jpeg_decodes_scaled_close_to_a_full_decode():
    data = photo_jpeg(1600, 1200)
    scaled = decode_resized(data, 64).numpy().astype(int)
    full = resize_uint8(decode_rgb(data), 64).numpy().astype(int)
    assert scaled.shape == (64, 64, 3)
    assert np.abs(scaled - full).mean() < 2.0  # the same picture, not just the same shape
    assert not (scaled == full).all()  # and it really took the 1/8-scale branch


def test_the_same_bytes_give_the_same_pixels_in_training_and_in_the_saved_model(tmp_path):
    """The serving signature decodes with the training pipeline's function, bit for bit.

    Also for a sideways phone photo: both turn it upright by its EXIF orientation.
    """
    size = 48
    uris = []
    for i, (width, height) in enumerate([(1600, 1200), (900, 1300), (200, 150), (48, 48)]):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(photo_jpeg(width, height))
        uris.append(str(path))
    (tmp_path / "4.png").write_bytes(_png(300, 200))
    (tmp_path / "5.jpg").write_bytes(with_exif_orientation(photo_jpeg(400, 300), 6))
    uris += [str(tmp_path / "4.png"), str(tmp_path / "5.jpg")]
    training = np.concatenate([x.numpy() for x, _, _ in image_dataset(uris, [0] * 6, size, 2)])
    pixels_out = keras.Sequential([keras.Input((size, size, 3)), keras.layers.Flatten()])
    write_saved_model(pixels_out, [str(i) for i in range(size * size * 3)], f"{tmp_path}/m")
    serving = tf.saved_model.load(f"{tmp_path}/m").signatures["serving_default"]
    served = serving(image_bytes=tf.constant([Path(u).read_bytes() for u in uris]))
    np.testing.assert_array_equal(
        served["probabilities"].numpy().reshape(training.shape), training.astype(np.float32)
    )


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(out, "PNG")
    return out.getvalue()
