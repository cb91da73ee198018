"""Image validation: every kind of bad file gets its own reason; odd-but-valid images pass."""

import io
import os
import struct
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from devtools.imagegen import broken_files, class_image, encode
from kftransfer.components.core import validation
from kftransfer.components.core.images import decode_resized
from kftransfer.components.core.validation import check_image

RGB = class_image(1, 0)
IPHONE_HEIC = Path(__file__).parents[1] / "data" / "iphone.heic"  # real (tests/data/README.md)


def check(tmp_path, name: str, data: bytes, min_side: int = 16, max_pixels: int = 10**8):
    path = tmp_path / name
    path.write_bytes(data)
    return check_image(str(path), min_side, max_pixels)


@pytest.mark.parametrize("name", sorted(broken_files()))
def test_each_broken_file_gets_its_reason(tmp_path, name):
    data, expected = broken_files()[name]
    result = check(tmp_path, name, data)
    assert result.problem == expected
    assert result.detail


@pytest.mark.parametrize(
    "mode,fmt",
    [("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("RGB", "GIF"),
     ("RGB", "BMP"), ("RGB", "WEBP"), ("LA", "PNG")],
)  # fmt: skip
def test_any_channel_layout_is_valid(tmp_path, mode, fmt):
    result = check(tmp_path, f"x.{fmt.lower()}", encode(RGB, fmt, mode=mode))
    assert result.problem is None, result.detail
    assert result.note == ""


def test_sixteen_bit_png_is_valid(tmp_path):
    deep = (np.arange(48 * 48).reshape(48, 48) * 20).astype(np.uint16)
    assert check(tmp_path, "deep.png", encode(deep)).problem is None


@pytest.mark.parametrize("name", ["IMG_0001.HEIC", "renamed.jpg"])
def test_an_iphone_heif_photo_is_unsupported_and_says_how_to_convert_it(tmp_path, name):
    result = check(tmp_path, name, IPHONE_HEIC.read_bytes())
    assert (result.problem, result.format) == ("unsupported_format", "HEIF")
    assert result.detail == (
        "HEIF is not supported (iPhone photos: convert them to JPEG, or set Camera > "
        "Formats > Most Compatible)"
    )


def test_wrong_extension_is_accepted_and_noted(tmp_path):
    result = check(tmp_path, "really-webp.jpg", encode(RGB, "WEBP"))
    assert result.problem is None
    assert result.note == "named .jpg but is WEBP"


def test_pixel_cap_rejects_decompression_bombs_before_decoding(tmp_path):
    result = check(tmp_path, "big.png", encode(RGB), max_pixels=48 * 48 - 1)
    assert result.problem == validation.DECOMPRESSION_BOMB
    assert "48x48 px" in result.detail


@pytest.mark.parametrize("width,height", [(8192, 6144), (16320, 12240)])
def test_50_and_200_megapixel_phone_photos_are_valid(tmp_path, width, height):
    # Before: the 50 MP one was over the 50,000,000 px cap, the 200 MP one over PIL's.
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = np.arange(width, dtype=np.uint32) * 255 // width
    data = encode(pixels, "JPEG")
    result = check(tmp_path, "IMG_0001.jpg", data, max_pixels=50_000_000)
    assert (result.problem, result.format) == (None, "JPEG")
    square = decode_resized(data, 224).numpy()
    assert square.shape == (224, 224, 3) and 0 < square[..., 0].mean() < 255


def test_a_jpeg_counts_the_pixels_of_its_one_eighth_decode(tmp_path):
    data = encode(np.zeros((800, 796, 3), np.uint8), "JPEG")  # 100 x 100 at 1/8 (rounded up)
    assert check(tmp_path, "a.jpg", data, max_pixels=100 * 100).problem is None
    bomb = check(tmp_path, "a.jpg", data, max_pixels=100 * 100 - 1)
    assert bomb.problem == validation.DECOMPRESSION_BOMB
    assert bomb.detail == "796x800 px (decoded at 1/8 scale: 10000 px) > 9999 px cap"
    png = check(tmp_path, "a.png", encode(np.zeros((800, 796, 3), np.uint8), "PNG"), 16, 10**5)
    assert png.detail == "796x800 px > 100000 px cap"  # anything else decodes in full


def test_a_progressive_jpeg_counts_all_its_pixels(tmp_path):
    # libjpeg keeps a progressive JPEG's every coefficient whatever the scale: before, a
    # 20000x20000 one of 2.3 MB counted 6.25 MP, passed the 50 MP cap, and took 1.75 GB.
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.zeros((800, 796, 3), np.uint8)).save(out, "JPEG", progressive=True)
    data = out.getvalue()
    assert check(tmp_path, "p.jpg", data, max_pixels=800 * 796).problem is None
    bomb = check(tmp_path, "p.jpg", data, max_pixels=800 * 796 - 1)
    assert bomb.problem == validation.DECOMPRESSION_BOMB
    assert bomb.detail == (
        "796x800 px (a progressive JPEG: decoding holds all of its coefficients) > 636799 px cap"
    )


@pytest.mark.parametrize("mode,problem,detail", [
    ("P", "unsupported_format", "a BMP of a colour palette is not supported (TensorFlow reads "
     "it wrong: save it as PNG)"),
    ("1", "unsupported_format", "a BMP of 1 bit per pixel is not supported (TensorFlow reads "
     "it wrong: save it as PNG)"),
    ("L", None, ""), ("RGB", None, ""),
])  # fmt: skip
def test_bmps_tensorflow_misreads_are_unsupported(tmp_path, mode, problem, detail):
    # Before: a palette BMP was valid and trained on as palette indices (red and blue read
    # as levels 0 and 1), and a 1-bit one was called corrupt.
    from PIL import Image

    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:, :16] = (255, 0, 0)
    pixels[:, 16:] = (0, 0, 255)
    image = Image.fromarray(pixels)
    if mode == "P":
        image = image.quantize(colors=2)
    elif mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, "BMP")
    result = check(tmp_path, "a.bmp", out.getvalue())
    assert (result.problem, result.detail) == (problem, detail)


def test_min_side_is_configurable(tmp_path):
    assert check(tmp_path, "a.png", encode(RGB[:20, :40]), min_side=21).problem == "too_small"
    assert check(tmp_path, "b.png", encode(RGB[:20, :40]), min_side=20).problem is None


def test_hash_is_the_content_sha256(tmp_path):
    import hashlib

    data = encode(RGB)
    assert check(tmp_path, "h.png", data).sha256 == hashlib.sha256(data).hexdigest()


def test_unreadable_file_is_reported_not_raised(tmp_path):
    result = check_image(str(tmp_path / "gone.png"), 16, 10**8)
    assert result.problem == validation.UNREADABLE
    assert "gone.png: not found" in result.detail


@pytest.mark.timeout(30)  # before: reading the pipe waited for a writer, for ever
@pytest.mark.parametrize(
    "make,kind",
    [
        (lambda path: os.mkfifo(path), "a named pipe (FIFO)"),
        (lambda path: os.symlink("/dev/null", path), "a character device"),  # or /dev/zero
        (lambda path: os.mkdir(path), "a folder"),
    ],
    ids=["fifo", "device", "folder"],
)
def test_a_file_that_is_no_regular_file_is_unreadable_at_once(tmp_path, make, kind):
    make(tmp_path / "x.jpg")
    result = check_image(str(tmp_path / "x.jpg"), 16, 10**8)
    assert result.problem == validation.UNREADABLE
    assert result.detail == f"{tmp_path}/x.jpg: not a regular file but {kind}: only files are read"


def _png_header(width: int, height: int) -> bytes:
    """A PNG up to its first image data: 8-bit RGB of `width` x `height` pixels."""
    fields = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    header = struct.pack(">I", 13) + fields + struct.pack(">I", zlib.crc32(fields))
    return b"\x89PNG\r\n\x1a\n" + header + struct.pack(">I", 2**30) + b"IDAT"


def test_the_cap_is_ours_past_pils_own_and_pil_prints_nothing():
    """Before: past PIL's 179 MP an image was refused whatever --max-image-pixels, as `PIL
    refused it > CAP px cap` (false when CAP was larger), and past 89 MP PIL printed its
    two-line DecompressionBombWarning to stderr."""
    from PIL import Image

    huge, big = _png_header(20000, 20000), _png_header(10000, 10000)  # 400 MP, 100 MP
    bomb = validation.header_problem("pano.png", huge, 50_000_000)
    assert bomb.detail == "20000x20000 px > 50000000 px cap"
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("always")
        assert validation.header_problem("pano.png", huge, 500_000_000) is None  # raised cap
        assert validation.header_problem("pano.png", big, 500_000_000) is None
    assert printed == []
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # PIL's own, for everyone else


def _large(path: Path, head: bytes) -> str:
    """A sparse file of `head` and zeros, past `LARGE_FILE_BYTES`: as read, 100 MB."""
    with open(path, "wb") as file:
        file.write(head)
        file.truncate(validation.LARGE_FILE_BYTES + 64 * 2**20)
    return str(path)


def _peak_bytes(check_one) -> tuple[object, int]:
    tracemalloc.start()
    try:
        return check_one(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "name,head,problem",
    [
        ("IMG_0001.MOV", b"\0\0\0\x14ftypqt  \0\0\0\0qt  ", validation.NOT_AN_IMAGE),
        ("IMG_0002.MP4", b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom", validation.NOT_AN_IMAGE),
        ("pano.png", _png_header(65536, 65536), validation.DECOMPRESSION_BOMB),
    ],
)  # fmt: skip
def test_a_large_file_its_header_rules_out_is_not_read_whole(tmp_path, name, head, problem):
    # Phones keep videos of GBs beside their photos: the split read each whole (and tried
    # to decode it), 16 at a time; a 3 GB one took 52 s and 16 GB of memory.
    uri = _large(tmp_path / name, head)
    result, peak = _peak_bytes(lambda: check_image(uri, 16, 10**8))
    assert result.problem == problem, result.detail
    assert result.sha256 == ""
    assert peak < 4 * validation.HEADER_BYTES  # the 100 MB it holds were never in memory


def test_a_large_image_is_still_read_whole_and_hashed(tmp_path):
    # A JPEG with a video appended (a phone's "motion photo") is an image, however large.
    import hashlib

    uri = _large(tmp_path / "PXL_0001.MP.jpg", encode(RGB, "JPEG"))
    result = check_image(uri, 16, 10**8)
    assert (result.problem, result.format) == (None, "JPEG")
    assert result.sha256 == hashlib.sha256(Path(uri).read_bytes()).hexdigest()


def _animated_gif(frames: int, side: int = 64) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).quantize(16)
        for _ in range(frames)
    ]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=50)
    return out.getvalue()


def test_an_animated_gif_counts_every_frame_against_the_pixel_cap(tmp_path):
    """Before: only the first frame's pixels counted, but TensorFlow decodes every frame of
    a GIF to keep the first: a 2.8 MB GIF of 600 frames of 2000x2000 took 2.3 GB."""
    cap = 64 * 64 * 5
    for frames, problem in ((5, None), (6, validation.DECOMPRESSION_BOMB)):
        path = tmp_path / f"{frames}.gif"
        path.write_bytes(_animated_gif(frames))
        check = check_image(str(path), min_side=8, max_pixels=cap)
        assert check.problem == problem, check
    assert check.detail == (
        "64x64 px x 6 frames (TensorFlow decodes every frame of a GIF) > 20480 px cap"
    )
    assert not validation.judge_head("a.gif", _animated_gif(2), cap)[1]  # counted whole
