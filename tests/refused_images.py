"""Images `predict` must refuse from their header, whether read from disk or a bucket."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

CAP = 48 * 48  # the pixel cap these tests give: the 64x64 PNG is over it
ERRORS = [  # what `predict` answers each of `files`, in order
    "",
    "unsupported_format: a BMP of a colour palette is not supported (TensorFlow reads it "
    "wrong: save it as PNG)",
    "decompression_bomb: 64x64 px > 2304 px cap",
]


def _encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def files(good_uri: str) -> dict[str, bytes]:
    """A good image (a copy of `good_uri`), a palette BMP and a PNG over CAP, by name."""
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:, 16:] = (255, 0, 0)
    return {
        "a.png": Path(good_uri).read_bytes(),
        "b.bmp": _encoded(Image.fromarray(pixels).quantize(colors=2), "BMP"),
        "c.png": _encoded(Image.fromarray(np.zeros((64, 64, 3), np.uint8)), "PNG"),
    }
