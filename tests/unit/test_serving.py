"""The served model's header checks, in TensorFlow ops, say what the split's say."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kftransfer.components.core import validation
from kftransfer.components.core.serving import header_problem


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


RGB = Image.fromarray(np.zeros((64, 48, 3), np.uint8))
PHOTO = Image.fromarray(np.zeros((512, 384, 3), np.uint8))
COMMENT = b"\xff\xfe" + (65535).to_bytes(2, "big") + bytes(65533)  # a 64 KiB JPEG segment
FILES = {
    "png": encoded(RGB, "PNG"),
    "gif": encoded(RGB, "GIF"),
    "bmp": encoded(RGB, "BMP"),
    "webp lossy": encoded(RGB, "WEBP", quality=80),
    "webp lossless": encoded(RGB, "WEBP", lossless=True),
    "webp extended": encoded(Image.fromarray(np.zeros((64, 48, 4), np.uint8)), "WEBP"),
    "jpeg": encoded(PHOTO, "JPEG"),
    "progressive jpeg": encoded(PHOTO, "JPEG", progressive=True),
    "padded jpeg": (lambda j: j[:2] + 3 * COMMENT + j[2:])(encoded(PHOTO, "JPEG")),
    "palette bmp": encoded(
        Image.fromarray(np.arange(64 * 48 * 3, dtype=np.uint8).reshape(64, 48, 3)).quantize(16),
        "BMP",
    ),  # fmt: skip
}


@pytest.mark.parametrize("cap", [100, 5000, 10**9])
@pytest.mark.parametrize("name", sorted(FILES))
def test_the_served_verdict_is_the_splits(name, cap):
    data = FILES[name]
    split = validation.header_problem(name, data, cap)
    expected = f"{split.problem}: {split.detail}" if split else ""
    assert header_problem(tf.constant(data), cap).numpy().decode() == expected


def test_bytes_of_no_image_pass_to_the_decoder():
    for data in (b"", b"GIF", b"hello" * 20):
        assert header_problem(tf.constant(data), 1).numpy() == b""
