"""The labelled images of a source (class folders, a pre-split tree, a CSV); those left out."""

import hashlib

from kftransfer.components.core import listing, storage
from kftransfer.components.core.candidates import (
    CLASS_FOLDERS,
    PRESPLIT,
    Discovery,
    Skipped,
    class_name,
    shown_name,
)
from kftransfer.components.core.csv_source import discover_csv
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


def discover(source: str) -> Discovery:
    """Lists the candidate images of `source` (local path or `gs://` URI).

    Raises:
        UserError: the source does not exist, is empty, or its CSV is unreadable.
    """
    source = source.rstrip("/") if source not in ("/", "gs://") else source
    if source.lower().endswith(".csv"):
        return discover_csv(source)
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
    files = listing.list_files(source)
    if not files:
        raise UserError(f"source {source} is empty: expected class folders like {source}/cats/")
    relative = [(info, _parts(storage.relative_to(info.uri, source))) for info in files]
    top = {parts[0].lower() for _, parts in relative if len(parts) > 1 and not is_hidden(parts)}
    if top and top <= set(SPLIT_FOLDERS):
        _check_presplit(source, top, relative)
        found = _discover_tree(relative, PRESPLIT, depth=2)
        names = {parts[0] for _, parts in relative if len(parts) > 2}
        split_folders = sorted(name for name in names if name.lower() in SPLIT_FOLDERS)
        return _with_empty_classes(found, [storage.join(source, s) for s in split_folders])
    _check_not_mixed(source, relative)
    return _with_empty_classes(_discover_tree(relative, CLASS_FOLDERS, depth=1), [source])


def _with_empty_classes(found: Discovery, parents: list[str]) -> Discovery:
    """`found`, with the class folders in `parents` that hold no image as `empty_classes`.

    A class folder of no image (or only hidden files; on GCS, a console's placeholder
    object) is a class of 0 images, an error, not a class that drops out unseen: in a
    pre-split tree too, where `train/zebras/` empty lost the class (its other splits'
    folders empty as well).
    """
    names = [name for parent in parents for name in listing.list_folders(parent)]
    shown = {class_name(shown_name(name)) for name in names if not is_hidden([name])}
    found.empty_classes = sorted(shown - set(found.spellings))
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
    relative: list[tuple[listing.FileInfo, list[str]]], layout: str, depth: int
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


def fingerprint(source: str) -> str:
    """A hash of what `source` holds now: every file's path, size and version.

    Cheap (a listing, no reads): it changes when a file is added, removed or replaced, so
    a cached split is reused only while the data is unchanged. For a CSV: its bytes, and
    the size and version of every file its rows name (one stat or metadata request each),
    so a named file replaced in place is noticed too.
    """
    digest = hashlib.sha256()
    if source.lower().endswith(".csv"):
        digest.update(storage.read_bytes(source))
        for candidate in discover_csv(source).candidates:
            info = candidate.listed
            line = f"{candidate.uri}\t{info.size}\t{info.version}\n" if info else "-\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
    else:
        for info in listing.list_files(source.rstrip("/")):
            relative = storage.relative_to(info.uri, source)
            line = f"{relative}\t{info.size}\t{info.version}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))  # names not UTF-8 too
    return digest.hexdigest()
