"""What a source's listing yields: candidate images with their class, and what was left out.

Shared by the folder sources (`sources`) and CSV sources (`csv_source`), with how a class
name is read from a folder name or a CSV label.
"""

import unicodedata
from dataclasses import dataclass, field

from kftransfer.components.core import listing

CLASS_FOLDERS = "class_folders"
PRESPLIT = "presplit"
CSV_FILE = "csv"


@dataclass(frozen=True)
class Candidate:
    """A file claimed to be an image of class `label` (and, pre-split, of `split`).

    `listed` is what the source's listing said of it (size, version, checksum), or None
    for a file that was not there to list (a CSV row naming a missing file).
    """

    uri: str
    label: str
    split: str | None = None
    listed: listing.FileInfo | None = None


@dataclass(frozen=True)
class Skipped:
    """A file left out before or during validation, and why."""

    uri: str
    reason: str
    detail: str = ""


@dataclass
class Discovery:
    """What a source holds: its layout, the candidate images and what was skipped.

    `spellings` maps each class name to the folder names or CSV labels it was read from
    (more than one when they differ only in Unicode normalization, see `class_name`).
    `misnamed` holds the candidates whose local path is not UTF-8 (`shown_name`): they
    count toward their class, and are skipped as `bad_file_name`. `empty_classes` are
    class folders without a file: classes of 0 images, not classes that drop out.
    """

    layout: str
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    spellings: dict[str, set[str]] = field(default_factory=dict)
    misnamed: set[str] = field(default_factory=set)
    empty_classes: list[str] = field(default_factory=list)

    def add(
        self,
        uri: str,
        raw_label: str,
        split: str | None = None,
        listed: listing.FileInfo | None = None,
    ) -> None:
        """Adds the candidate `uri` of the class named `raw_label` in the source."""
        shown = shown_name(uri)
        if shown != uri:
            uri, raw_label = shown, shown_name(raw_label)
            self.misnamed.add(uri)
        label = class_name(raw_label)
        self.spellings.setdefault(label, set()).add(raw_label)
        self.candidates.append(Candidate(uri, label, split, listed))


BAD_FILE_NAME = "bad_file_name"
MISNAMED = (
    "its name is not UTF-8 (from an archive made on Windows?): rename it, e.g. "
    "convmv -f cp1252 -t utf-8 -r --notest FOLDER"
)


def shown_name(path: str) -> str:
    """`path` as it can be written and shown: the bytes of a name that are not UTF-8 as U+FFFD.

    Python lists such a name (a Latin-1 `café/`, byte 0xE9, unzipped on Linux) with
    surrogates, which no UTF-8 file, CSV or terminal takes.
    """
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def class_name(raw_label: str) -> str:
    """The name of a class: its folder name or CSV label, in Unicode NFC.

    macOS (HFS+, and tools that copy from it) writes `café` decomposed, as `e` and a
    combining accent (NFD); Linux and Windows write it composed (NFC). The two look and
    mean the same, so folders of both spellings are one class, named in NFC.
    """
    return unicodedata.normalize("NFC", raw_label)


def same_classes(exported: list[str], labels: list[str]) -> bool:
    """Whether a model's class names (`exported`, in output order) are `labels`, in order.

    Compared by `class_name`: a model exported before class names were read in NFC
    names `café` in the spelling its folders had.
    """
    return [class_name(label) for label in exported] == list(labels)
