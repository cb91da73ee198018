"""Generated image datasets for tests: learnable (colour + shape) and deliberately broken files."""

import io

import numpy as np
from PIL import Image

from kftransfer.components.core import storage

# Class colours far apart in RGB: separable even by a random-weights backbone.
PALETTE = [(220, 40, 40), (40, 200, 60), (50, 70, 220), (230, 200, 40), (200, 60, 200)]


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None, **kwargs) -> bytes:
    """Encodes a uint8 array (HxW or HxWx3) with PIL, optionally converted to `mode` first."""
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def class_image(class_index: int, sample: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """A noisy image of class `class_index`: its colour, and a shape (square/disc/bar) by class.

    Every (class_index, sample, seed) gives different pixels, hence a different hash.
    """
    rng = np.random.default_rng([seed, class_index, sample])
    colour = np.array(PALETTE[class_index % len(PALETTE)], dtype=np.float32)
    canvas = rng.normal(128, 20, (size, size, 3))
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(size // 3, 2 * size // 3, 2)
    radius = size // 4
    shape = class_index % 3
    if shape == 0:
        mask = (abs(yy - cy) < radius) & (abs(xx - cx) < radius)
    elif shape == 1:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    else:
        mask = abs(yy - cy) < radius // 2
    canvas[mask] = colour + rng.normal(0, 12, (int(mask.sum()), 3))
    return np.clip(canvas, 0, 255).astype(np.uint8)


def write_class_folders(
    root: str, counts: dict[str, int], size: int = 48, seed: int = 0, start: int = 0
) -> list[str]:
    """Writes `root/<class>/img_NNNN.png` (local or gs://); returns the URIs written."""
    uris = []
    for class_index, (label, count) in enumerate(sorted(counts.items())):
        for sample in range(start, start + count):
            uri = storage.join(root, label, f"img_{sample:04d}.png")
            storage.write_bytes(uri, encode(class_image(class_index, sample, size, seed)))
            uris.append(uri)
    return uris


def broken_files() -> dict[str, tuple[bytes, str]]:
    """File name -> (bytes, expected problem code) for every kind of bad file."""
    good = class_image(0, 999)
    jpeg = encode(good, "JPEG")
    png = encode(good, "PNG")
    return {
        "empty.png": (b"", "zero_bytes"),
        "notes.jpg": (b"these are not pixels\n" * 10, "not_an_image"),
        "scan.tiff": (encode(good, "TIFF"), "unsupported_format"),
        "cut.jpg": (jpeg[: len(jpeg) // 2], "corrupt"),
        "cut.png": (png[: len(png) // 2], "corrupt"),
        "icon.png": (encode(good[:8, :8]), "too_small"),
    }


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """A photo-like uint8 image: detail at every scale (a 1/f-like spectrum) plus sensor noise.

    JPEG-encoded at quality 90 a 4000x3000 one is ~3.3 MB, 2.2 bits per pixel, as a 12 MP
    camera photo is; its decode time splits between entropy decoding and the inverse DCT
    as a photo's does (pure noise would make entropy decoding all of it, a smooth image
    almost none).
    """
    rng = np.random.default_rng(seed)
    half_w, half_h = width // 2, height // 2
    total = np.zeros((half_h, half_w, 3), np.float32)
    scale = 2
    while min(half_w, half_h) // scale >= 2:
        coarse = rng.normal(0, 1, (half_h // scale + 1, half_w // scale + 1, 3)).astype(np.float32)
        total += scale**0.3 * np.stack(
            [np.asarray(Image.fromarray(coarse[..., c]).resize((half_w, half_h), Image.BICUBIC))
             for c in range(3)], axis=-1,
        )  # fmt: skip
        scale *= 2
    total = (total - total.mean()) / total.std() * 55 + 128
    half = Image.fromarray(np.clip(total, 0, 255).astype(np.uint8))
    full = np.asarray(half.resize((width, height), Image.BICUBIC), np.int16)
    noise = rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    return np.clip(full + noise, 0, 255).astype(np.uint8)


def write_photos(
    root: str, count: int, width: int = 4000, height: int = 3000, classes: int = 2, start: int = 0
) -> list[str]:
    """Writes `count` photo-like JPEGs as `root/class<k>/photo_NNNNN.jpg`; returns their paths."""
    import os

    paths = []
    for i in range(start, start + count):
        folder = os.path.join(root, f"class{i % classes}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"photo_{i:05d}.jpg")
        with open(path, "wb") as out:
            out.write(encode(photo(width, height, i), "JPEG", quality=90))
        paths.append(path)
    return paths


def with_exif_orientation(
    jpeg: bytes, orientation: int, byte_order: str = "II", after_jfif: bool = False
) -> bytes:
    """`jpeg` with an APP1 Exif segment as a phone camera writes it, saying `orientation`.

    IFD0 holds Make and Model (tags sorted, so the orientation is not the first entry),
    the orientation as a SHORT, and an ~16 KB maker-note-like blob, as camera EXIF does.
    `byte_order` "II" (little-endian) or "MM"; the segment goes right after SOI (the
    Exif standard) or, `after_jfif`, after the JFIF APP0 segment PIL writes.
    """
    import struct

    end = "<" if byte_order == "II" else ">"
    strings = b"Phone\0Camera 1\0" + bytes(16_000)
    entries = [  # (tag, type, count, value or offset); ASCII = 2, SHORT = 3, UNDEFINED = 7
        (0x010F, 2, 6, 0),
        (0x0110, 2, 9, 6),
        (0x0112, 3, 1, None),
        (0x927C, 7, 16_000, 15),
    ]
    data_start = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack(end + "H", len(entries))
    for tag, kind, count, value in entries:
        if value is None:
            field = struct.pack(end + "HH", orientation, 0)
        else:
            field = struct.pack(end + "I", data_start + value)
        ifd += struct.pack(end + "HHI", tag, kind, count) + field
    tiff = byte_order.encode() + struct.pack(end + "HI", 42, 8) + ifd + bytes(4) + strings
    payload = b"Exif\0\0" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    assert jpeg[:2] == b"\xff\xd8"
    cut = 2
    if after_jfif and jpeg[2:4] == b"\xff\xe0":
        cut = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:cut] + segment + jpeg[cut:]


def stored_sideways(jpeg: bytes) -> bytes:
    """A JPEG as a phone held upright stores it: sideways, with EXIF orientation 6.

    The pixels are turned 90° counter-clockwise; orientation 6 says to turn them 90°
    clockwise to show them.
    """
    turned = io.BytesIO()
    with Image.open(io.BytesIO(jpeg)) as image:
        image.transpose(Image.Transpose.ROTATE_90).save(turned, "JPEG", quality=95)
    return with_exif_orientation(turned.getvalue(), 6)
