"""What an image file's header says, read with Pillow without decoding a pixel.

Format (also from magic numbers when the header is too damaged for Pillow), size,
progressive JPEG, mode, and a GIF's frames: what the split's and `predict`'s checks judge
a file by before anything decodes it.
"""

import contextlib
import io
import threading
from collections.abc import Iterator
from typing import NamedTuple

# Leading bytes of image formats, to recognise a file whose header is too damaged for PIL.
MAGIC_NUMBERS = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}

# Major brands of ISO media files that hold still images TensorFlow cannot decode.
ISO_MEDIA_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1"), "HEIF"),
    b"avif": "AVIF",
    b"avis": "AVIF",
}


class Header(NamedTuple):
    """What a file's header says, without decoding a pixel.

    Attributes:
        format: PIL's name of the format (None when PIL knows none).
        dims: (width, height); None when the bytes end before they say.
        progressive: a progressive JPEG.
        mode: PIL's mode (a BMP of a palette is `P`).
        frames: a GIF's frames (counted by skipping through them), else 1.
    """

    format: str | None
    dims: tuple[int, int] | None
    progressive: bool
    mode: str
    frames: int


def read_header(data: bytes) -> Header:
    """From the header only (no pixel decode): format, size, progressive, mode, frames.

    PIL's own decompression-bomb cap is off while it reads the header: `--max-image-pixels`
    is applied to the size read here. With it on, an image over PIL's 179 MP was refused
    whatever the cap (and named only "PIL refused it"), and one over 89 MP printed PIL's
    two-line DecompressionBombWarning to stderr.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with _pil_cap_off(Image), Image.open(io.BytesIO(data)) as image:
            progressive = bool(image.info.get("progressive"))
            frames = image.n_frames if image.format == "GIF" else 1
            return Header(image.format, image.size, progressive, image.mode, frames)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return Header(_magic_format(data), None, False, "", 1)


_PIL_CAP = threading.Lock()  # Image.MAX_IMAGE_PIXELS is PIL's global


@contextlib.contextmanager
def _pil_cap_off(image_module) -> Iterator[None]:
    """PIL's pixel cap off for the block (a header read: nothing is decoded), then restored."""
    with _PIL_CAP:
        saved, image_module.MAX_IMAGE_PIXELS = image_module.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            image_module.MAX_IMAGE_PIXELS = saved


def _magic_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in ISO_MEDIA_BRANDS:
        return ISO_MEDIA_BRANDS[data[8:12]]
    return next((fmt for magic, fmt in MAGIC_NUMBERS.items() if data.startswith(magic)), None)
