"""A CSV source: `uri,label` rows (or columns a header names), relative to the CSV's folder."""

import csv
import dataclasses
import io
import os
import posixpath

from kftransfer.components.core import listing, storage
from kftransfer.components.core.candidates import CSV_FILE, Candidate, Discovery, Skipped
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.parallel import map_ordered

# A CSV header's names (lower case) of the image column and of the label column: `uri,label`,
# and what other tools and Kaggle datasets write (`filename,class`, `image,label`, ...).
URI_COLUMNS = ("uri", "path", "filepath", "file_path", "filename", "file", "image", "image_path")
LABEL_COLUMNS = ("label", "class", "class_name", "category")
# The first column of a Vertex AI import CSV (`TRAIN,gs://b/1.jpg,cat`), lower case.
VERTEX_ML_USE = frozenset({"training", "train", "validation", "test", "unassigned"})

# A folder is listed (a request per 1,000 objects) when the CSV names this many files of it
# per page the listing may take: at most a tenth of the requests of stat-ing each.
STATS_PER_LISTING_PAGE = 10

# Delimiters other than a comma that spreadsheets write: -> (name, the header declaring it).
SEPARATORS = {";": ("semicolon", "`uri;label`"), "\t": ("tab", "`uri<TAB>label`")}


def discover_csv(csv_uri: str) -> Discovery:
    """The candidates a CSV of `uri,label` rows names, and its rows left out.

    Raises:
        UserError: the CSV cannot be read, has no usable row, or is a Vertex AI import file.
    """
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
    found.candidates = _with_listings(found.candidates)
    return found


def _with_listings(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates with what a listing says of each file (None for one that is not there).

    It is what the validation cache keys a verdict by, and the source's fingerprint hashes,
    so that a file a CSV names that is replaced in place is noticed, as a folder's is. No
    file is read. On GCS each folder the CSV names files in is listed, one request per
    1,000 of its objects, for up to a tenth of the requests stat-ing its files would take
    (a folder far larger than what the CSV names of it is not listed to the end); the files
    no listing gave, and local files, get one stat or metadata request each, on a thread
    pool. Before, every file of a bucket's CSV cost a request, in each of three steps.
    """
    uris = [c.uri for c in candidates]
    listed = _folder_listings([uri for uri in uris if storage.is_gcs(uri)])
    rest = [uri for uri in uris if uri not in listed]
    listed.update(zip(rest, map_ordered(_listing, rest, threads=storage.READ_THREADS), strict=True))
    return [dataclasses.replace(c, listed=listed[c.uri]) for c in candidates]


def _folder_listings(uris: list[str]) -> dict[str, listing.FileInfo]:
    """What the listings of their folders say of `gs://` files (those they give)."""
    by_folder: dict[str, set[str]] = {}
    for uri in uris:
        by_folder.setdefault(storage.parent(uri), set()).add(uri)

    def listed_in(folder: str) -> dict[str, listing.FileInfo]:
        named = by_folder[folder]
        pages = len(named) // STATS_PER_LISTING_PAGE
        if not pages:  # a few files: their stats cost less than a listing
            return {}
        try:
            infos = listing.folder_infos(folder, pages)
        except storage.StorageError:  # each file's own request says what is wrong
            return {}
        return {uri: info for uri, info in infos.items() if uri in named}

    found: dict[str, listing.FileInfo] = {}
    for infos in map_ordered(listed_in, sorted(by_folder), threads=storage.READ_THREADS):
        found.update(infos)
    return found


def _listing(uri: str) -> listing.FileInfo | None:
    try:
        return listing.file_info(uri)
    except storage.StorageError:  # unreadable: the split's check says so
        return None


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
