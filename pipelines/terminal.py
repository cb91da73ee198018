"""Text for a terminal: one line stays one line, whatever the names in it hold."""

import unicodedata


def printable(text: str) -> str:
    r"""`text` with its control characters escaped as Python writes them (`\n`, `\x1b`).

    An object name may hold any character, a file name any but '/'. Printed as it is, a
    newline would split one line of output into two, or forge one, and an escape sequence
    would drive the terminal. JSON output escapes them itself.
    """
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in text)
