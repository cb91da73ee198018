"""Image validation: decode every candidate as training will, and say why one is rejected."""

import contextlib
import dataclasses
import hashlib
import os
from dataclasses import dataclass

from kftransfer.components.core import storage
from kftransfer.components.core.image_headers import Header, read_header

# Problem codes, in the order they are checked.
ZERO_BYTES = "zero_bytes"
UNREADABLE = "unreadable"
NOT_AN_IMAGE = "not_an_image"
DECOMPRESSION_BOMB = "decompression_bomb"
UNSUPPORTED_FORMAT = "unsupported_format"
CORRUPT = "corrupt"
TOO_SMALL = "too_small"

NOT_AN_IMAGE_DETAIL = "not a recognised image format"

# A file over LARGE_FILE_BYTES is judged by its first HEADER_BYTES before it is read whole.
LARGE_FILE_BYTES = 32 << 20  # 3-4x a 12-megapixel photo
HEADER_BYTES = 1 << 20  # PIL reads a header in far less; an EXIF segment is at most 64 KiB

UNSUPPORTED_HINTS = {  # what to do with a format users commonly have
    "HEIF": "iPhone photos: convert them to JPEG, or set Camera > Formats > Most Compatible",
}
# BMPs TensorFlow misreads: of a colour palette it decodes the indices, not the colours
# (silently: red and blue came out as levels 0 and 1), and a 1-bit one it calls corrupt.
# PIL's modes for them (a grey palette is mode L, which TensorFlow reads right).
PALETTE_BMP_MODES = {"P": "a colour palette", "1": "1 bit per pixel"}
PALETTE_BMP_HINT = "TensorFlow reads it wrong: save it as PNG"

# What each extension promises; a mismatch is accepted if decodable, and noted.
EXTENSION_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",  # what Windows and some browsers name a saved JPEG
    ".png": "PNG",
    ".gif": "GIF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one file.

    Attributes:
        uri: the file.
        sha256: hex digest of its bytes ("" when they were not read: unreadable, or a large
            file its header proved no image or too large; see `check_image`).
        problem: None for a valid image, else one of the problem codes above.
        detail: a human explanation of the problem.
        note: a remark on a valid image (e.g. its extension lies about its format).
        format: the format its header names (PIL's name, e.g. "JPEG"), if any.
    """

    uri: str
    sha256: str
    problem: str | None = None
    detail: str = ""
    note: str = ""
    format: str | None = None


def check_image(uri: str, min_side: int, max_pixels: int, size: int | None = None) -> ImageCheck:
    """Reads, hashes and fully decodes one file; never raises for a bad file.

    A file over `LARGE_FILE_BYTES` (`size`, as listed; a local file's is looked up) is
    judged by its first `HEADER_BYTES` first: one that is no image (the videos a phone
    keeps beside its photos) or has too many pixels is not read whole, nor hashed.
    """
    try:
        if _is_large(uri, size):
            problem = _head_problem(uri, storage.read_head(uri, HEADER_BYTES), max_pixels)
            if problem:
                return problem
        data = storage.read_bytes(uri)
    except storage.StorageError as err:
        broken = not storage.is_gcs(uri) and os.path.islink(uri) and not os.path.exists(uri)
        detail = f"a symbolic link to {os.readlink(uri)}, which does not exist" if broken else ""
        return ImageCheck(uri, "", UNREADABLE, detail or str(err))
    digest = hashlib.sha256(data).hexdigest()
    return check_image_bytes(uri, digest, data, min_side, max_pixels)


def _is_large(uri: str, size: int | None) -> bool:
    """Whether `uri` is over `LARGE_FILE_BYTES`.

    An object of unknown size counts as small (read whole): asking its size would cost a
    request per object.
    """
    if size is None and not storage.is_gcs(uri):
        with contextlib.suppress(OSError):  # else the read says why
            size = os.stat(uri).st_size
    return size is not None and size > LARGE_FILE_BYTES


def header_problem(uri: str, head: bytes, max_pixels: int) -> ImageCheck | None:
    """What a file's first bytes prove must not be decoded: too many pixels, a misread BMP.

    None when they prove nothing (an unknown header is left to the decoder to judge).
    """
    return _judge_header(uri, "", head, max_pixels)[1]


def judge_head(uri: str, head: bytes, max_pixels: int) -> tuple[ImageCheck | None, bool]:
    """`header_problem` of a file's first bytes, and whether they told all the cap needs.

    They do not when the size lies further in (a JPEG's ICC profile or XMP before its
    frame header), nor for a GIF, whose frames are only counted by reading them all.
    """
    header = read_header(head)
    told_all = header.dims is not None and header.format != "GIF"
    return _judge(uri, "", header, max_pixels)[1], told_all


def _head_problem(uri: str, head: bytes, max_pixels: int) -> ImageCheck | None:
    """What a file's first bytes alone prove: no image, too many pixels, a misread BMP."""
    header_format, problem = _judge_header(uri, "", head, max_pixels)
    if header_format is None:
        return ImageCheck(uri, "", NOT_AN_IMAGE, NOT_AN_IMAGE_DETAIL)
    return problem


def check_image_bytes(
    uri: str, digest: str, data: bytes, min_side: int, max_pixels: int
) -> ImageCheck:
    """Classifies encoded bytes as a valid image or one problem (see the module's codes)."""
    if not data:
        return ImageCheck(uri, digest, ZERO_BYTES, "the file is empty")
    header_format, problem = _judge_header(uri, digest, data, max_pixels)
    if problem:
        return problem
    check = _decode_check(uri, digest, data, header_format, min_side)
    return dataclasses.replace(check, format=header_format)


def _judge_header(
    uri: str, digest: str, data: bytes, max_pixels: int
) -> tuple[str | None, ImageCheck | None]:
    """The format a file's header names, and its problem if the header proves one."""
    return _judge(uri, digest, read_header(data), max_pixels)


def _judge(
    uri: str, digest: str, header: Header, max_pixels: int
) -> tuple[str | None, ImageCheck | None]:
    """Too many pixels for `max_pixels` (a decompression bomb), or a BMP TensorFlow misreads."""
    if header.dims and decoded_pixels(*header[:3], frames=header.frames) > max_pixels:
        detail = _bomb_detail(header, max_pixels)
        return header.format, ImageCheck(uri, digest, DECOMPRESSION_BOMB, detail)
    if header.format == "BMP" and header.mode in PALETTE_BMP_MODES:
        kind = PALETTE_BMP_MODES[header.mode]
        detail = f"a BMP of {kind} is not supported ({PALETTE_BMP_HINT})"
        return header.format, ImageCheck(uri, digest, UNSUPPORTED_FORMAT, detail)
    return header.format, None


def decoded_pixels(
    header_format: str | None, dims: tuple[int, int], progressive=False, frames: int = 1
) -> int:
    """The pixels decoding holds: a baseline JPEG's at 1/8 of each side, anything else's all.

    Validation decodes a JPEG at libjpeg's 1/8 DCT scale (`images.decoded_size`), and
    training at the smallest scale covering the input size, 1/8 for any photo whose short
    side is 8x the input's: a 200-megapixel phone photo decodes as about 3 megapixels. A
    progressive JPEG is the exception: libjpeg keeps every DCT coefficient of the whole
    image while it decodes one, whatever the scale (a 20000x20000 one of 2.3 MB took
    1.75 GB at 1/8, its baseline twin 0.60 GB: docs/benchmarks.md), so its pixels count
    in full. So do all `frames` of an animated GIF: TensorFlow decodes every frame to keep
    the first (a 2.8 MB GIF of 600 frames of 2000x2000 took 2.3 GB to give one image).
    """
    from kftransfer.components.core.images import JPEG_SCALES

    width, height = dims
    if header_format == "JPEG" and not progressive:
        return -(-width // JPEG_SCALES[0]) * -(-height // JPEG_SCALES[0])
    return width * height * frames


def _bomb_detail(header: Header, cap: int) -> str:
    from kftransfer.components.core.images import JPEG_SCALES

    size = f"{header.dims[0]}x{header.dims[1]} px"
    if header.format == "JPEG" and header.progressive:
        size += " (a progressive JPEG: decoding holds all of its coefficients)"
    elif header.format == "JPEG":
        scale = JPEG_SCALES[0]
        size += f" (decoded at 1/{scale} scale: {decoded_pixels(*header[:3])} px)"
    elif header.frames > 1:
        size += f" x {header.frames} frames (TensorFlow decodes every frame of a GIF)"
    return f"{size} > {cap} px cap"


def _decode_check(uri, digest, data, header_format, min_side) -> ImageCheck:
    import tensorflow as tf

    from kftransfer.components.core.images import decoded_size

    try:
        height, width = decoded_size(data)
    except tf.errors.InvalidArgumentError as err:
        return _decode_failure(uri, digest, header_format, err)
    if min(height, width) < min_side:
        return ImageCheck(uri, digest, TOO_SMALL, f"{width}x{height} px < {min_side} px")
    return ImageCheck(uri, digest, note=extension_note(uri, header_format))


def _decode_failure(uri: str, digest: str, header_format: str | None, err: Exception):
    message = (str(getattr(err, "message", err)).strip().splitlines() or [""])[0]
    if header_format is None:
        return ImageCheck(uri, digest, NOT_AN_IMAGE, NOT_AN_IMAGE_DETAIL)
    if "Unknown image file format" in message:
        hint = UNSUPPORTED_HINTS.get(header_format, "use JPEG/PNG")
        return ImageCheck(
            uri, digest, UNSUPPORTED_FORMAT, f"{header_format} is not supported ({hint})"
        )
    return ImageCheck(uri, digest, CORRUPT, f"{header_format} is truncated or corrupt")


def extension_note(uri: str, header_format: str | None) -> str:
    """A remark when a file's extension promises another format than its header's."""
    extension = os.path.splitext(uri)[1].lower()
    expected = EXTENSION_FORMATS.get(extension)
    if header_format and expected and header_format != expected:
        return f"named {extension} but is {header_format}"
    return ""
