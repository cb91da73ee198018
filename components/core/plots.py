"""Figures for the step outputs and the report: PNG bytes from matplotlib, embedded in HTML."""

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kftransfer.components.core import storage  # noqa: E402


def figure_png(figure) -> bytes:
    """Renders and closes a matplotlib figure; returns PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def literal(texts: list[str]) -> list[str]:
    """Texts (class names) as matplotlib must be given them to draw them as written.

    It reads what lies between two `$` as math: price tiers `$`, `$$`, `$$$` failed the
    evaluation step (a mathtext `ValueError`), and `$5 or $10` lost its signs.
    """
    return [text.replace("$", r"\$") for text in texts]


def img_tag(png: bytes, alt: str) -> str:
    """An `<img>` element with the PNG embedded as a data URI (self-contained HTML)."""
    data = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def training_curves(history: dict[str, list[float]], title: str) -> bytes:
    """Loss and accuracy per epoch, training and validation, side by side."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    accuracy = next((k for k in history if k.endswith("accuracy") and not k.startswith("val_")), "")
    for axis, key, label in [(axes[0], "loss", "loss"), (axes[1], accuracy, "accuracy")]:
        for prefix, style in [("", "-"), ("val_", "--")]:
            values = history.get(prefix + key, [])
            if values:
                epochs = np.arange(1, len(values) + 1)
                axis.plot(
                    epochs,
                    values,
                    style,
                    marker="o",
                    markersize=3,
                    label="validation" if prefix else "training",
                )
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    figure.suptitle(title)
    return figure_png(figure)


def html_page(title: str, body: str) -> str:
    """A small self-contained HTML document."""
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:4px 10px;text-align:right}th{background:#f3f3f3}td:first-child,"
        "th:first-child{text-align:left}img{max-width:100%}.ok{color:#176f2c}.no{color:#a31515}"
        "figure{display:inline-block;margin:4px;text-align:center;font-size:12px}"
        "figure img{width:96px;height:96px;image-rendering:pixelated}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def curves_page(history: dict[str, list[float]], title: str, best_epoch: int | None) -> str:
    """The HTML page of one training stage's curves."""
    note = (
        f"<p>Best validation loss at epoch {best_epoch} (weights restored).</p>"
        if best_epoch
        else ""
    )
    return html_page(title, note + img_tag(training_curves(history, title), f"{title} curves"))


THUMBNAIL = 96


def thumbnail(uri: str) -> bytes:
    """A THUMBNAIL-pixel PNG of an image file, upright (an empty PNG if it cannot be read)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(storage.read_bytes(uri))) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((THUMBNAIL, THUMBNAIL))
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            return buffer.getvalue()
    except (OSError, storage.StorageError):
        return b""
