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
