"""Phone photos stored sideways are trained, evaluated and served upright, as viewers show them."""

import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from devtools.imagegen import encode, photo, with_exif_orientation
from kftransfer.components.core.exif import apply_orientation, jpeg_orientation
from kftransfer.components.core.images import decode_resized, resize_uint8
from kftransfer.components.core.plots import thumbnail

SIZE = 32


def asymmetric_picture(height: int = 60, width: int = 80) -> np.ndarray:
    """Blocks of different colours in three corners: each of the 8 orientations differs."""
    pixels = np.full((height, width, 3), 128, np.uint8)
    pixels[: height // 3, : width // 4] = (250, 20, 20)
    pixels[: height // 3, -width // 4 :] = (20, 250, 20)
    pixels[-height // 3 :, : width // 2] = (20, 20, 250)
    return pixels


def upright(data: bytes) -> np.ndarray:
    """What an image viewer shows: PIL's decode turned by `ImageOps.exif_transpose`."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def nearest_orientation(pixels: np.ndarray, reference: np.ndarray) -> int:
    """The orientation (1-8) that, applied to `reference`, is closest to `pixels`."""
    errors = [
        np.abs(apply_orientation(reference, o).numpy().astype(int) - pixels).mean()
        for o in range(1, 9)
    ]
    return int(np.argmin(errors)) + 1


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("byte_order", "after_jfif"), [("II", False), ("MM", True)])
def test_each_orientation_is_read_and_decodes_as_a_viewer_shows_it(
    orientation, byte_order, after_jfif
):
    plain = encode(asymmetric_picture(), "JPEG", quality=95)
    data = with_exif_orientation(plain, orientation, byte_order, after_jfif)
    assert int(jpeg_orientation(tf.constant(data))) == orientation

    ours = decode_resized(data, SIZE).numpy().astype(int)
    viewer = resize_uint8(tf.constant(upright(data)), SIZE).numpy().astype(int)
    assert np.abs(ours - viewer).mean() < 2.0  # the same picture, decoder rounding apart
    stored = resize_uint8(tf.io.decode_jpeg(plain, channels=3), SIZE)
    assert nearest_orientation(ours, stored) == orientation


def test_turning_the_small_square_equals_turning_the_photo_first():
    rng = np.random.default_rng(0)
    for height, width, size in [(300, 400, 64), (30, 40, 64), (301, 199, 48)]:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for orientation in range(1, 9):
            after = apply_orientation(resize_uint8(tf.constant(pixels), size), orientation)
            turned = pil_transposed(pixels, orientation)
            before = resize_uint8(tf.constant(turned), size).numpy()
            difference = np.abs(after.numpy().astype(int) - before.astype(int))
            assert difference.max() <= 1 and (difference > 0).mean() < 0.001


def pil_transposed(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """`pixels` turned as `PIL.ImageOps.exif_transpose` turns that orientation."""
    transpose = Image.Transpose
    method = {
        2: transpose.FLIP_LEFT_RIGHT,
        3: transpose.ROTATE_180,
        4: transpose.FLIP_TOP_BOTTOM,
        5: transpose.TRANSPOSE,
        6: transpose.ROTATE_270,
        7: transpose.TRANSVERSE,
        8: transpose.ROTATE_90,
    }.get(orientation)
    if method is None:  # Transpose.FLIP_LEFT_RIGHT is 0: test for None, not falsiness
        return pixels
    return np.asarray(Image.fromarray(pixels).transpose(method))


def test_a_sideways_camera_photo_takes_the_scaled_decode_and_comes_out_upright():
    pixels = photo(1600, 1200, seed=3)  # landscape pixels; the camera was held upright
    data = with_exif_orientation(encode(pixels, "JPEG", quality=90), 6)
    ours = decode_resized(data, 64).numpy().astype(int)
    viewer = resize_uint8(tf.constant(upright(data)), 64).numpy().astype(int)
    assert upright(data).shape == (1600, 1200, 3)  # portrait, as shown
    assert np.abs(ours - viewer).mean() < 3.0
    assert np.abs(ours - resize_uint8(tf.constant(pixels), 64).numpy()).mean() > 10


def _exif_segment(tiff: bytes) -> bytes:
    payload = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _broken_exif() -> dict[str, bytes]:
    plain = encode(asymmetric_picture(), "JPEG", quality=95)
    entry = struct.pack("<HHHIHH", 1, 0x0112, 3, 1, 6, 0)  # count 1, orientation 6
    good_tiff = b"II" + struct.pack("<HI", 42, 8) + entry + bytes(4)
    assert jpeg_orientation(plain[:2] + _exif_segment(good_tiff) + plain[2:]) == 6

    def inserted(segment: bytes) -> bytes:
        return plain[:2] + segment + plain[2:]

    return {
        "no exif": plain,
        "orientation 9": with_exif_orientation(plain, 9),
        "orientation 0": with_exif_orientation(plain, 0),
        "ifd offset past the end": inserted(
            _exif_segment(b"II" + struct.pack("<HI", 42, 0xFFFFFFF0) + entry[2:])
        ),
        "entry cut short": inserted(_exif_segment(good_tiff[:16])),  # JPEG bytes follow
        "zero entries": inserted(_exif_segment(b"II" + struct.pack("<HIH", 42, 8, 0))),
        "not tiff": inserted(_exif_segment(b"XX" + good_tiff[2:])),
        "not 42": inserted(_exif_segment(b"II" + struct.pack("<HI", 43, 8) + entry)),
        "xmp, not exif": inserted(b"\xff\xe1\x00\x10http://ns.adobe"),
        "segment length 0": inserted(b"\xff\xe1\x00\x00" + _exif_segment(good_tiff)),
        "exif after the scan": plain[:-2] + _exif_segment(good_tiff) + plain[-2:],
    }


@pytest.mark.parametrize("case", sorted(_broken_exif()))
def test_a_missing_or_broken_tag_reads_as_upright_and_never_fails_the_decode(case):
    data = _broken_exif()[case]
    assert int(jpeg_orientation(tf.constant(data))) == 1
    stored = resize_uint8(tf.io.decode_jpeg(data, channels=3), SIZE).numpy()
    np.testing.assert_array_equal(decode_resized(data, SIZE).numpy(), stored)


CUT_SHORT = b"\xff\xd8\xff\xe1\x00\x40Exif\0\0II*\0"  # says 64 bytes, has 10


@pytest.mark.parametrize("data", [b"", b"x", b"\xff\xd8", b"\xff\xd8\xff\xe1\x00", CUT_SHORT])
def test_reading_the_tag_of_a_few_bytes_is_1_not_an_error(data):
    assert int(jpeg_orientation(tf.constant(data))) == 1


def test_report_thumbnails_are_upright(tmp_path):
    path = tmp_path / "sideways.jpg"
    path.write_bytes(with_exif_orientation(encode(asymmetric_picture(), "JPEG"), 6))
    with Image.open(io.BytesIO(thumbnail(str(path)))) as image:
        assert image.height > image.width  # 80x60 stored, shown (and thumbnailed) 60x80
