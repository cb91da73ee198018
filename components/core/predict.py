"""Predictions of an exported model on image files: top-k labels with probabilities."""

import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import keras
import numpy as np

from kftransfer.components.core import listing, storage
from kftransfer.components.core.candidates import shown_name
from kftransfer.components.core.classifier import batch_probabilities, image_batches
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.export import load_exported, load_labelled_model
from kftransfer.components.core.layout import (
    LABELS_FILE,
    MODEL_FILE,
    SERVING_FILE,
    UNKNOWN,
    unknown_is_ambiguous,
)
from kftransfer.components.core.parallel import map_ordered
from kftransfer.components.core.sources import is_hidden
from kftransfer.components.core.validation import (
    EXTENSION_FORMATS,
    UNSUPPORTED_HINTS,
    ImageCheck,
    check_image,
    header_problem,
    judge_head,
)
from kftransfer.components.core.versions import resolve_model_folder

HEAD_BYTES = 128 << 10  # enough for a header behind an EXIF segment (at most 64 KiB); a
# file whose size lies further in (a JPEG's ICC profile or XMP before its frame header),
# or a larger GIF (its frames are counted), is read whole
HEAD_THREADS = 16
WINDOW = 1024  # images whose headers are checked before their batches start


@dataclass
class Prediction:
    """The answer for one image and its top-k `(label, probability)`, or why there are none.

    `label` is the most probable class, or `unknown` (and `abstained`) when its
    probability is below the minimum confidence.
    """

    uri: str
    top: list[tuple[str, float]]
    error: str = ""
    label: str = ""
    abstained: bool = False

    def to_json(self) -> dict:
        """`{"image", "label", "predictions": [{"label", "probability"}, ...]}` (or `"error"`)."""
        if self.error:
            return {"image": self.uri, "error": self.error}
        predictions = [{"label": label, "probability": shown(p, 6)} for label, p in self.top]
        return {"image": self.uri, "label": self.label, "predictions": predictions}


def shown(probability: float, digits: int) -> float:
    """`probability` cut (not rounded) to `digits` decimals.

    Rounded, 0.99999994 showed as 1.0 beside the answer `unknown` below a minimum
    confidence of 1; cut, a shown probability reaches a threshold of at most `digits`
    decimals exactly when the probability does. (1e-9 absorbs float error: 0.29 is
    0.28999999999999998 in binary, and stays 0.29.)
    """
    scale = 10**digits
    return math.floor(probability * scale + 1e-9) / scale


def load_predictor(uri: str) -> tuple[keras.Model, list[str], float]:
    """The model, labels and minimum confidence of an export folder, version or `.keras` file.

    An export folder means its latest version; a `.keras` file needs `labels.json` beside
    it. Local or gs://. The minimum confidence is the version's `serving.json` one (0 for
    a `.keras` file or a version exported without it).

    Raises:
        UserError: no model or no labels there.
    """
    if uri.endswith(".keras"):
        labels_uri = storage.join(storage.parent(uri), LABELS_FILE)
        if not storage.exists(labels_uri):
            raise UserError(f"no {LABELS_FILE} beside {uri}: the class names are needed")
        return (*load_labelled_model(uri, labels_uri), 0.0)
    uri = uri.rstrip("/")
    if storage.exists(uri):
        raise UserError(
            f"{uri} is a file: give an export folder, a version folder or a .keras file "
            f"(predict reads {MODEL_FILE}; saved_model.pb and model.tflite are for serving)"
        )
    if not storage.is_folder(uri):
        raise UserError(f"{uri}: no such export folder, version folder or .keras file")
    folder = resolve_model_folder(uri)
    return (*load_exported(folder), read_min_confidence(folder))


def read_min_confidence(folder: str) -> float:
    """The minimum confidence in a version's `serving.json` (0 when it has none).

    Raises:
        UserError: the file is not a JSON object, or its `min_confidence` is no number
            from 0 to 1.
    """
    uri = storage.join(folder, SERVING_FILE)
    if not storage.exists(uri):
        return 0.0
    try:
        serving = json.loads(storage.read_text(uri))
    except (ValueError, UnicodeDecodeError):
        serving = None
    value = serving.get("min_confidence", 0.0) if isinstance(serving, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise UserError(
            f'{uri} must be a JSON object whose "min_confidence" is a number from 0 to 1, '
            'e.g. {"min_confidence": 0.5}: fix it, or export the version again'
        )
    return float(value)


@dataclass
class FoundImages:
    """The images `predict` was given, and the files of its folders it left out."""

    uris: list[str] = field(default_factory=list)
    hidden: int = 0
    other: Counter = field(default_factory=Counter)  # extension ('' for none) -> files

    def left_out(self) -> str:
        """`left out ...`: what the folders held besides images ('' when nothing)."""
        parts = [f"{self.hidden} hidden file{'s' * (self.hidden != 1)}"] if self.hidden else []
        if self.other:
            kinds = ", ".join(f"{ext or 'no extension'} {n}" for ext, n in self.other.most_common())
            count = sum(self.other.values())
            parts.append(f"{count} file{'s' * (count != 1)} not named as images ({kinds})")
        heif = [ext for ext in (".heic", ".heif") if ext in self.other]
        why = f"; {' and '.join(heif)} is HEIF ({UNSUPPORTED_HINTS['HEIF']})" if heif else ""
        return f"left out {' and '.join(parts)}{why}" if parts else ""


def find_images(paths: list[str]) -> FoundImages:
    """Files as given; folders (local or gs://) expanded to the image files below them.

    A folder gives the files named as images (the extensions of
    `validation.EXTENSION_FORMATS`, any case: .jpg, .png, .webp, ...), leaving out
    hidden files (`.DS_Store`, macOS `._` copies, `sources.SYSTEM_NAMES`) as the split
    does; what it leaves out is counted, so the caller can say so.

    Raises:
        UserError: no image at all, naming the image extensions and what was left out.
    """
    found = FoundImages()
    for path in paths:
        if not storage.is_folder(path):
            found.uris.append(path)
            continue
        for info in listing.list_files(path):
            extension = os.path.splitext(info.uri)[1].lower()
            if is_hidden(storage.relative_to(info.uri, path).split("/")):
                found.hidden += 1
            elif extension in EXTENSION_FORMATS:
                found.uris.append(info.uri)
            else:
                found.other[extension] += 1
    if not found.uris:
        named = " ".join(sorted(EXTENSION_FORMATS))
        left_out = found.left_out()
        why = f": {left_out}" if left_out else ""
        raise UserError(f"no image files ({named}) in {', '.join(paths)}{why}")
    return found


def check_unknown_free(labels: list[str], min_confidence: float, source: str) -> None:
    """A model with a class named `unknown` cannot also answer `unknown` when unsure.

    Raises:
        UserError: it would, so its answers would be ambiguous.
    """
    if unknown_is_ambiguous(labels, min_confidence):
        raise UserError(
            f"{source} has a class named {UNKNOWN!r}, which is also the answer below the "
            f"minimum confidence {min_confidence:g}: give --min-confidence 0, or rename the "
            "class and retrain"
        )


def predict(
    model: keras.Model,
    labels: list[str],
    uris: list[str],
    top_k: int = 3,
    batch_size: int = 32,
    min_confidence: float = 0.0,
    max_pixels: int = SplitConfig().max_image_pixels,
) -> Iterator[Prediction]:
    """Predicts in batches, yielding answers in `uris` order as each batch is done.

    An unreadable image yields its error and the rest go on; an image whose top
    probability is below `min_confidence` is answered `unknown`. Images the split would
    refuse from their header alone are not decoded: more pixels than `max_pixels` (the
    split's default cap), a BMP TensorFlow misreads. Local files' headers are checked
    WINDOW images at a time, just before their batches, so a large folder's first answers
    come at once; a `gs://` object's header is checked in the bytes the batches read.
    """
    for start in range(0, len(uris), WINDOW):
        window = uris[start : start + WINDOW]
        yield from _predict_window(
            model, labels, window, top_k, batch_size, min_confidence, max_pixels
        )


def _predict_window(model, labels, uris, top_k, batch_size, min_confidence, max_pixels):
    """`predict` of up to WINDOW images."""
    # TensorFlow would wait for ever on a named pipe, or read a device without end.
    special = {i for i, uri in enumerate(uris) if storage.is_special_file(uri)}
    remote = {i for i, uri in enumerate(uris) if storage.is_gcs(uri)}
    refused = _refused_by_header(uris, special | remote, max_pixels)
    readable = [i for i in range(len(uris)) if i not in refused and i not in special]
    screen = HeaderScreen(max_pixels)  # the remote ones: their bytes as the batches read them
    batches = (
        image_batches(model, [uris[i] for i in readable], batch_size, refuse=screen)
        if readable
        else []
    )

    def failed(index: int) -> Prediction:
        return _failed(uris[index], refused.get(index) or screen.reasons.get(uris[index]))

    upcoming = 0
    for probabilities, positions in batch_probabilities(model, batches):
        for row, position in zip(probabilities, positions.tolist(), strict=True):
            index = readable[position]
            yield from (failed(i) for i in range(upcoming, index))
            yield _answer(uris[index], row, labels, top_k, min_confidence)
            upcoming = index + 1
    yield from (failed(i) for i in range(upcoming, len(uris)))


class HeaderScreen:
    """`header_problem` of `gs://` images, on the bytes the batches read: no extra request.

    Called by `images.image_dataset` with each object's bytes; `reasons` maps the URIs it
    refused to why, for their answers.
    """

    def __init__(self, max_pixels: int):
        self.max_pixels = max_pixels
        self.reasons: dict[str, str] = {}

    def __call__(self, uri: str, data: bytes) -> str:
        """Why `uri` (whose bytes are `data`) must not be decoded; '' to decode it."""
        why = _reason(header_problem(uri, data, self.max_pixels))
        if why:
            self.reasons[uri] = why
        return why


def _refused_by_header(uris: list[str], skip: set[int], max_pixels: int) -> dict[int, str]:
    """Index -> why, for the local images whose header proves they must not be decoded.

    One read of the first HEAD_BYTES per image (the whole file when they cannot tell),
    HEAD_THREADS at a time (TensorFlow reads local files itself, so they are checked
    before); an image that cannot be read is left to the batches, whose failure says why.
    `gs://` images are in `skip`: `HeaderScreen` checks the bytes the batches read.
    """

    def judge(index: int) -> str:
        try:
            head = storage.read_head(uris[index], HEAD_BYTES)
            problem, told_all = judge_head(uris[index], head, max_pixels)
            if len(head) == HEAD_BYTES and not told_all:
                problem = header_problem(uris[index], storage.read_bytes(uris[index]), max_pixels)
        except storage.StorageError:
            return ""
        return _reason(problem)

    todo = [i for i in range(len(uris)) if i not in skip]
    reasons = map_ordered(judge, todo, threads=HEAD_THREADS)
    return {index: why for index, why in zip(todo, reasons, strict=True) if why}


def _answer(uri: str, row: np.ndarray, labels: list[str], top_k: int, min_confidence: float):
    order = np.argsort(-row, kind="stable")[:top_k]
    top = [(labels[i], float(row[i])) for i in order]
    unsure = top[0][1] < min_confidence
    return Prediction(
        shown_name(uri), top, label=UNKNOWN if unsure else top[0][0], abstained=unsure
    )


def _failed(uri: str, reason: str | None = None) -> Prediction:
    """Why an image was not predicted: `reason`, or else what checking it finds."""
    if not reason:
        reason = _reason(check_image(uri, min_side=1, max_pixels=10**12)) or "could not be decoded"
    return Prediction(shown_name(uri), [], reason)


def _reason(check: ImageCheck | None) -> str:
    """`problem: detail` of a check that found one; '' for none."""
    return f"{check.problem}: {check.detail}" if check and check.problem else ""
