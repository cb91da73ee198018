"""The README's checkable promises, read from the README itself (so neither can drift)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
TYPES = {
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "list of strings": (list,),
    "list of objects": (list,),
    "object": (dict,),
    "string or null": (str, type(None)),
    "number or null": (int, float, type(None)),
}


def section(title: str) -> str:
    """The README's text under a heading (any level) titled `title`, up to the next heading."""
    text = README.read_text()
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def json_schema() -> dict[str, tuple[type, ...]]:
    """`--json`'s documented keys (dotted paths) and their Python types."""
    rows = re.findall(r"^\| `([\w.]+)` \| ([\w ]+?) \|", section("The `--json` summary"), re.M)
    assert rows, "README documents no --json keys"
    return {key: TYPES[kind] for key, kind in rows}


def demo_output() -> list[str]:
    """The last lines of the README's demo output: the summary `kftransfer demo` prints."""
    block = re.search(r"## What the demo prints\n\n```\n(.*?)```", README.read_text(), re.S)
    assert block, "README has no demo output"
    lines = block.group(1).splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"\s+validation\s+test", line))
    return lines[start:]
