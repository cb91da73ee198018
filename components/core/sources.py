"""The labelled images of a source (class folders, a pre-split tree, a CSV); those left out."""

import csv
import hashlib
import io
import os
import posixpath
import unicodedata
from dataclasses import dataclass, field

from kftransfer.components.core import storage
from kftransfer.components.core.errors import UserError

# Folder names of a pre-split tree (compared in lower case) -> the split they hold.
SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}

# A CSV header's names (lower case) of the image column and of the label column: `uri,label`,
# and what other tools and Kaggle datasets write (`filename,class`, `image,label`, ...).
URI_COLUMNS = ("uri", "path", "filepath", "file_path", "filename", "file", "image", "image_path")
LABEL_COLUMNS = ("label", "class", "class_name", "category")
# The first column of a Vertex AI import CSV (`TRAIN,gs://b/1.jpg,cat`), lower case.
VERTEX_ML_USE = frozenset({"training", "train", "validation", "test", "unassigned"})

# Delimiters other than a comma that spreadsheets write: -> (name, the header declaring it).
SEPARATORS = {";": ("semicolon", "`uri;label`"), "\t": ("tab", "`uri<TAB>label`")}

# Files and folders (lower case) that systems write beside photos: a Synology NAS's
# thumbnails of every photo (`cats/@eaDir/1.jpg/SYNOPHOTO_THUMB_M.jpg`, a copy that would
# leak into another split), recycle bins, Windows' thumbnail caches, macOS zip metadata.
SYSTEM_NAMES = frozenset(
    {
        "@eadir",
        "#recycle",
        "#snapshot",
        "$recycle.bin",
        "system volume information",
        "__macosx",
        "thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
    }
)

CLASS_FOLDERS = "class_folders"
PRESPLIT = "presplit"
CSV_FILE = "csv"


@dataclass(frozen=True)
class Candidate:
    """A file claimed to be an image of class `label` (and, pre-split, of `split`).

    `listed` is what the source's listing said of it (size, version, checksum), or None
    for a file a CSV names.
    """

    uri: str
    label: str
    split: str | None = None
    listed: storage.FileInfo | None = None


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
        listed: storage.FileInfo | None = None,
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


def discover(source: str) -> Discovery:
    """Lists the candidate images of `source` (local path or `gs://` URI).

    Raises:
        UserError: the source does not exist, is empty, or its CSV is unreadable.
    """
    source = source.rstrip("/") if source not in ("/", "gs://") else source
    if source.lower().endswith(".csv"):
        return _discover_csv(source)
    if storage.exists(source):
        raise UserError(
            f"source {source} is a file: give a folder of class folders, or a CSV of "
            "uri,label rows named .csv (a tab-separated one too, with the header uri<TAB>label)"
        )
    if not storage.is_folder(source):
        raise UserError(
            f"source {source} does not exist: give a folder of class folders "
            "(SOURCE/<class>/*.jpg), a train/validation/test tree, or a CSV of uri,label"
        )
    files = storage.list_files(source)
    if not files:
        raise UserError(f"source {source} is empty: expected class folders like {source}/cats/")
    relative = [(info, _parts(storage.relative_to(info.uri, source))) for info in files]
    top = {parts[0].lower() for _, parts in relative if len(parts) > 1 and not is_hidden(parts)}
    if top and top <= set(SPLIT_FOLDERS):
        _check_presplit(source, top, relative)
        return _discover_tree(relative, PRESPLIT, depth=2)
    _check_not_mixed(source, relative)
    found = _discover_tree(relative, CLASS_FOLDERS, depth=1)
    folders = [shown_name(name) for name in storage.list_folders(source) if not is_hidden([name])]
    found.empty_classes = sorted({class_name(name) for name in folders} - set(found.spellings))
    return found


def _parts(relative: str) -> list[str]:
    """A path's folder and file names, without empty ones.

    An object name may hold `//` (`photos//dogs/1.jpg`, from an upload script's doubled
    slash): the empty name between is no class (it was the class `''`).
    """
    return [part for part in relative.split("/") if part]


def _check_not_mixed(source: str, relative: list[tuple[object, list[str]]]) -> None:
    """Refuses split folders of class folders beside other folders (`train/`, `test/`, `extra/`).

    Read as class folders, such a tree would train a model of the classes `train`,
    `test` and `extra`, its real classes lost. A split-named folder holding images
    directly is a class (`train` among vehicles), not a split.

    Raises:
        UserError: a split-named folder holds class folders, and other folders sit beside it.
    """
    shown = [parts for _, parts in relative if len(parts) > 1 and not is_hidden(parts)]
    splits = sorted({p[0] for p in shown if len(p) > 2 and p[0].lower() in SPLIT_FOLDERS})
    flat = {p[0] for p in shown if len(p) == 2}
    splits = [name for name in splits if name not in flat]
    others = sorted({p[0] for p in shown if p[0].lower() not in SPLIT_FOLDERS})
    if splits and others:
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        raise UserError(
            f"source {source} mixes split folders ({', '.join(splits)}) with other folders "
            f"({', '.join(others[:3])}{more}): a pre-split tree holds only train/, "
            "validation/ and test/; move the others out of it"
        )


def _check_presplit(source: str, top: set[str], relative: list[tuple[object, list[str]]]) -> None:
    """A tree whose top folders are all split names is pre-split: it must be a usable one.

    Raises:
        UserError: no train folder, or images straight inside a split folder.
    """
    splits = sorted(top)
    if "train" not in {SPLIT_FOLDERS[name] for name in top}:
        raise UserError(
            f"source {source} has only split folders ({', '.join(splits)}) and no train/: "
            "add SOURCE/train/<class>/, or give class folders (SOURCE/<class>/*.jpg)"
        )
    flat = sorted({parts[0] for _, parts in relative if len(parts) == 2 and not is_hidden(parts)})
    if flat:
        raise UserError(
            f"source {source} is a pre-split tree ({', '.join(splits)}) but {flat[0]}/ holds "
            f"images directly: put them in class folders, e.g. {flat[0]}/<class>/1.jpg"
        )


def is_hidden(parts: list[str]) -> bool:
    """Whether a path below a source (its `/`-separated parts) is or lies in a hidden file.

    Dot files (`.DS_Store`, macOS `._IMG_1.jpg` resource forks, `.git/`) and the files
    systems keep beside photos (`SYSTEM_NAMES`) are never images of the dataset. The
    split and `predict`'s folder listing both leave them out.
    """
    return any(part.startswith(".") or part.lower() in SYSTEM_NAMES for part in parts)


def _discover_tree(
    relative: list[tuple[storage.FileInfo, list[str]]], layout: str, depth: int
) -> Discovery:
    found = Discovery(layout)
    where = "a split/class folder" if depth == 2 else "a class folder"
    for info, parts in relative:
        if is_hidden(parts):
            found.skipped.append(
                Skipped(info.uri, "hidden_file", "dot files and system files are ignored")
            )
        elif len(parts) <= depth:
            found.skipped.append(Skipped(info.uri, "outside_class_folder", f"not inside {where}"))
        elif depth == 2:
            found.add(info.uri, parts[1], SPLIT_FOLDERS[parts[0].lower()], info)
        else:
            found.add(info.uri, parts[0], listed=info)
    return found


def _discover_csv(csv_uri: str) -> Discovery:
    try:
        text = storage.read_text(csv_uri)
        delimiter = header_delimiter(text, *URI_COLUMNS) or ","
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except UnicodeDecodeError as err:
        raise UserError(not_utf8(f"CSV {csv_uri}", err)) from err
    except (storage.NotFoundError, csv.Error) as err:
        raise UserError(
            f"cannot read CSV {csv_uri}: {err}; expected a UTF-8 file of `uri,label` rows"
        ) from err
    first_line, columns = 1, (0, 1)
    if rows and (named := _named_columns(rows[0])):
        rows, first_line, columns = rows[1:], 2, named
    if not rows:
        raise UserError(f"CSV {csv_uri} has no rows: expected `uri,label` lines")
    _check_not_vertex(csv_uri, rows[0])
    found = Discovery(CSV_FILE)
    base = storage.parent(csv_uri)
    for number, row in enumerate(rows, start=first_line):
        _add_csv_row(found, csv_uri, base, number, [_cell(row, i) for i in columns])
    if not found.candidates:
        raise UserError(
            f"CSV {csv_uri} has no usable `uri,label` row, e.g. `cats/1.jpg,cat`"
            + _separator_hint(text)
        )
    return found


def _named_columns(first_row: list[str]) -> tuple[int, int] | None:
    """The image and label columns a header names (`uri,label`, `filename,class`, ...), if any."""
    names = [cell.strip().lower() for cell in first_row]
    uri = next((i for i, name in enumerate(names) if name in URI_COLUMNS), None)
    label = next((i for i, name in enumerate(names) if name in LABEL_COLUMNS), None)
    return (uri, label) if uri is not None and label is not None else None


def _cell(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def _check_not_vertex(csv_uri: str, first_row: list[str]) -> None:
    """Refuses a Vertex AI import CSV, whose first column is the split, not the image.

    Raises:
        UserError: the first row reads `TRAIN,gs://b/1.jpg,cat` (every image would be of
            the class named by its own path).
    """
    if len(first_row) >= 3 and first_row[0].strip().lower() in VERTEX_ML_USE:
        raise UserError(
            f"CSV {csv_uri} looks like a Vertex AI import file (`{first_row[0].strip()},uri,"
            "label` rows): kftransfer splits by content itself; drop the first column"
        )


def not_utf8(what: str, err: UnicodeDecodeError) -> str:
    """The error line for a text file that is not UTF-8 (Excel's plain CSV is not)."""
    return (
        f"{what} is not UTF-8 (byte 0x{err.object[err.start]:02x} at offset {err.start}): "
        "save it as UTF-8 (in Excel: Save As > CSV UTF-8)"
    )


def _separator_hint(text: str) -> str:
    """How to make a header-less semicolon- or tab-separated CSV readable ('' if not one)."""
    first_line = text.split("\n", 1)[0]
    for delimiter, (name, header) in SEPARATORS.items():
        if delimiter in first_line:
            return f"; its rows look {name}-separated: start it with the header line {header}"
    return ""


def header_delimiter(text: str, *columns: str) -> str | None:
    """The delimiter of CSV `text` whose first line names one of `columns`; None otherwise.

    A comma, or the semicolon or tab that spreadsheets write in some locales (Excel in
    German or French saves `uri;label`), with the names quoted or not.
    """
    line = text.split("\n", 1)[0]
    for delimiter in (",", *SEPARATORS):
        cells = next(csv.reader([line], delimiter=delimiter), [])  # quoted, as R writes it
        if set(columns) & {cell.strip().lower() for cell in cells}:
            return delimiter
    return None


def _add_csv_row(found: Discovery, csv_uri: str, base: str, number: int, row: list[str]) -> None:
    where = f"{csv_uri}:{number}"
    if not any(cell.strip() for cell in row):
        return
    if len(row) < 2 or not row[0].strip() or not row[1].strip():
        found.skipped.append(Skipped(where, "bad_csv_row", "expected `uri,label`"))
        return
    try:
        uri = resolve_csv_uri(base, row[0].strip())
    except UserError as err:
        found.skipped.append(Skipped(where, "path_escape", str(err)))
        return
    found.add(uri, row[1].strip())


def resolve_csv_uri(base: str, uri: str) -> str:
    """Resolves a CSV entry: absolute URIs as given, relative ones inside the CSV's folder.

    Raises:
        UserError: a relative path climbs out of the CSV's folder (`../`).
    """
    if uri.startswith("file://"):  # an absolute local path as a URI
        uri = uri.removeprefix("file://")
    if storage.is_gcs(uri) or os.path.isabs(uri):
        return uri
    normal = posixpath.normpath(uri.replace("\\", "/"))
    if normal == ".." or normal.startswith("../") or normal.startswith("/"):
        raise UserError(f"{uri} escapes the CSV's folder; use a path inside it or an absolute URI")
    return storage.join(base, normal)


def fingerprint(source: str) -> str:
    """A hash of what `source` holds now: every file's path, size and version (or a CSV's bytes).

    Cheap (a listing, no reads): it changes when a file is added, removed or replaced, so
    a cached split is reused only while the data is unchanged. A CSV's rows may point
    anywhere; its fingerprint covers the CSV itself, not the files it names.
    """
    digest = hashlib.sha256()
    if source.lower().endswith(".csv"):
        digest.update(storage.read_bytes(source))
    else:
        for info in storage.list_files(source.rstrip("/")):
            relative = storage.relative_to(info.uri, source)
            line = f"{relative}\t{info.size}\t{info.version}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))  # names not UTF-8 too
    return digest.hexdigest()
