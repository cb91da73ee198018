"""Exclusion files: the images a user asks a split to leave out (`--exclude`)."""

import csv
import io

from kftransfer.components.core import storage
from kftransfer.components.core.csv_source import header_delimiter, not_utf8
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.progress import LOGGER


def read_exclusions(uri: str) -> set[str]:
    """The image URIs listed in an exclusion file ('' = none).

    One URI per line (blank lines and `#` comments ignored), or a CSV whose header has a
    `uri` column, comma-, semicolon- or tab-separated (a run's `label_issues.csv`, trimmed
    by hand to the images to drop, in a spreadsheet or not).

    Raises:
        UserError: the file does not exist or is not UTF-8.
    """
    if not uri:
        return set()
    if not storage.exists(uri):
        raise UserError(f"{uri}: not found (--exclude names a file of image URIs to leave out)")
    try:
        text = storage.read_text(uri).lstrip()
    except UnicodeDecodeError as err:
        raise UserError(not_utf8(f"--exclude {uri}", err)) from err
    delimiter = header_delimiter(text, "uri")
    if delimiter:
        table = csv.reader(io.StringIO(text), delimiter=delimiter)
        column = [cell.strip().lower() for cell in next(table)].index("uri")
        return {row[column].strip() for row in table if len(row) > column and row[column].strip()}
    lines = (line.strip() for line in text.splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def unmatched_exclusions(excluded: set[str], candidates, exclude: str, source: str) -> list[str]:
    """A warning (logged) when images listed in `exclude` are not files of the source."""
    unmatched = sorted(excluded - {c.uri for c in candidates})
    if not unmatched:
        return []
    warning = (
        f"{len(unmatched)} of the {len(excluded)} images listed in {exclude} "
        f"{'is not a file' if len(unmatched) == 1 else 'are not files'} of {source}, e.g. "
        f"{unmatched[0]}: list them as the split does (train.csv's uri)"
    )
    LOGGER.warning(warning)
    return [warning]
