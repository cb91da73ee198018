"""What makes a source unusable for a split, or suspicious: checked before and after validation.

A split needs two classes or more, each with `--min-images-per-class` valid images, and
images in every split. These are one-line errors naming the fix; a class whose files were
all skipped (an iPhone folder of HEIF photos, say) is a class with 0 images, not a class
that silently disappears. Class names that differ only in case, width or separators are a
warning; names that differ only in Unicode normalization are one class, also said.
"""

import collections
import unicodedata

from kftransfer.components.core import storage
from kftransfer.components.core.candidates import PRESPLIT, Candidate, Skipped
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.exclusions import read_exclusions
from kftransfer.components.core.layout import SPLITS, Row
from kftransfer.components.core.sources import discover

LISTED = 5  # classes named in an error line; the rest are counted


def require_usable(
    source: str,
    rows: list[Row],
    skipped: list[Skipped],
    config: SplitConfig,
    candidates: list[Candidate],
    empty_classes: list[str] = (),
) -> list[str]:
    """Returns the sorted class names, or raises UserError naming what makes the data unusable.

    A class whose files were all skipped counts as a class with 0 images, not as no class.

    Args:
        source: the source, as the user gave it.
        rows: the valid images kept.
        skipped: every file left out, and why.
        config: the split's settings.
        candidates: every file the source listed, with its class, less those --exclude
            names (a class all of whose files are excluded is dropped, as asked).
        empty_classes: class folders without a file (`Discovery.empty_classes`).
    """
    if not rows:
        raise UserError(
            f"no valid images in {source} ({_reasons(skipped) or 'nothing found'})"
            f"{_example(source, skipped)}"
        )
    counts = collections.Counter(dict.fromkeys((c.label for c in candidates), 0))
    counts.update(dict.fromkeys(empty_classes, 0))
    counts.update(row.label for row in rows)
    _require_classes(source, counts, config, "valid images", _skipped_by_class(candidates, skipped))
    empty = [split for split in SPLITS if not any(row.split == split for row in rows)]
    given = {c.split for c in candidates} - {None}  # the split folders of a pre-split tree
    if empty:
        fix = (
            f"add valid images to its {' and '.join(empty)} folder"
            if given.issuperset(empty)
            else "add images or raise --val-fraction / --test-fraction"
        )
        raise UserError(f"the {' and '.join(empty)} split of {source} would be empty: {fix}")
    _require_train_images(rows, presplit=bool(given))
    return sorted(label for label, n in counts.items() if n)


def _require_train_images(rows: list[Row] | list[Candidate], presplit: bool) -> None:
    """Every class has train images: one only in validation/ or test/ cannot be learnt.

    `rows` are the split's rows, or a pre-split tree's candidates (each has its split).

    Raises:
        UserError: names up to `LISTED` such classes and where their images are.
    """
    by_label: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        by_label[row.label][row.split] += 1
    untrained = [(label, n) for label, n in sorted(by_label.items()) if not n["train"]]
    if not untrained:
        return
    listed = ", ".join(
        f"{label!r} ({', '.join(f'{count} in {split}' for split, count in n.items())})"
        for label, n in untrained[:LISTED]
    )
    more = f" and {len(untrained) - LISTED} more" if len(untrained) > LISTED else ""
    folder = f"train/{untrained[0][0]}/" if len(untrained) == 1 else "train/<class>/ for each"
    fix = (
        f"add {folder}, or name the class alike in every split folder" if presplit else "add images"
    )
    raise UserError(f"no train images of class {listed}{more}: a model cannot learn it; {fix}")


def _skipped_by_class(
    candidates: list[Candidate], skipped: list[Skipped]
) -> dict[str, list[Skipped]]:
    """Each class's skipped files: label -> [Skipped]."""
    label_of = {candidate.uri: candidate.label for candidate in candidates}
    by_class = collections.defaultdict(list)
    for item in skipped:
        if item.uri in label_of:
            by_class[label_of[item.uri]].append(item)
    return by_class


def _reasons(skipped: list[Skipped]) -> str:
    """`12 unsupported_format, 1 corrupt`: the reasons, most common first."""
    reasons = collections.Counter(item.reason for item in skipped)
    return ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())


def _example(source: str, skipped: list[Skipped]) -> str:
    """`; e.g. <path in source>: <detail>` for a file of the most common reason, or ''."""
    if not skipped:
        return ""
    reason = collections.Counter(item.reason for item in skipped).most_common(1)[0][0]
    item = next(item for item in skipped if item.reason == reason)
    path = item.uri.removeprefix(source.rstrip("/") + "/")
    return f"; e.g. {path}: {item.detail}" if item.detail else ""


def _require_classes(
    source: str,
    counts: collections.Counter,
    config: SplitConfig,
    what: str,
    skipped: dict[str, list[Skipped]] | None = None,
) -> None:
    """At least two classes, each with `config.min_images_per_class` images.

    Args:
        skipped: with each class's skipped files (label -> [Skipped]), a class below the
            minimum is named with what was skipped of it, and one of those files with why.

    Raises:
        UserError: one line; a long list of classes is summarised.
    """
    if len(counts) < 2:
        only = next(iter(counts))
        wrapper = storage.join(source, only) if not source.lower().endswith(".csv") else ""
        raise UserError(
            f"only one class ({only!r}) in {source}: a classifier needs at least two class "
            "folders" + (f" (are they in {wrapper}? give that as the source)" if wrapper else "")
        )
    small = {label: n for label, n in sorted(counts.items()) if n < config.min_images_per_class}
    if small:
        shown = list(small.items())[:LISTED]
        of_shown = [(skipped or {}).get(label, []) for label, _ in shown]
        listed = [
            f"{label!r} has {n}"
            + (f" of {n + len(items)} files ({_reasons(items)} skipped)" if items else "")
            for (label, n), items in zip(shown, of_shown, strict=True)
        ]
        more = f" and {len(small) - LISTED} more classes" if len(small) > LISTED else ""
        example = _example(source, next((items for items in of_shown if items), []))
        empty = [
            label for (label, n), items in zip(shown, of_shown, strict=True) if not n + len(items)
        ]
        fix = (
            f"fill or remove the empty class folder{'s' * (len(empty) > 1)}"
            if len(empty) == len(small)
            else "add images or lower the minimum"
        )
        raise UserError(
            f"too few {what}: {', '.join(listed)}{more}, below --min-images-per-class "
            f"{config.min_images_per_class}{example}; {fix}"
        )


def precheck(source: str, config: SplitConfig) -> None:
    """Refuses a source that cannot split, from its listing alone (no image is read).

    Run before a local pipeline starts, so an unusable source is one line and no run
    folder: a missing or empty source, a broken layout, one class, a class with fewer
    files than `--min-images-per-class`, or a pre-split tree's class with no train files
    (each would still fail the split, later).

    Raises:
        UserError: naming the problem and the fix.
    """
    read_exclusions(config.exclude)
    found = discover(source)
    if not found.candidates:
        raise UserError(f"no image files in {source}: expected class folders like {source}/cats/")
    counts = collections.Counter(candidate.label for candidate in found.candidates)
    counts.update(dict.fromkeys(found.empty_classes, 0))
    _require_classes(source, counts, config, "image files")
    if found.layout == PRESPLIT:
        _require_train_images(found.candidates, presplit=True)


def skipped_line(stats: dict, stats_path: str) -> str:
    """What validation left out, on one line, or '' when nothing was.

    `skipped 14 files (12 unsupported_format, 2 corrupt; e.g. café/IMG_0000.HEIC: HEIF is
    not supported (...)): see <stats_path>`, from a split's `stats.json`.
    """
    skipped = [Skipped(**item) for item in stats.get("skipped", [])]
    if not skipped:
        return ""
    example = _example(stats.get("source", ""), skipped)
    return f"skipped {len(skipped)} files ({_reasons(skipped)}{example}): see {stats_path}"


def look_alike_classes(labels: list[str]) -> list[str]:
    """A warning per group of class names equal but for case, spaces, `_` and `-`.

    Compared in Unicode NFKC, so full-width `ｃａｔ` and `cat` are a look-alike pair too.
    """
    groups = collections.defaultdict(list)
    for label in labels:
        folded = unicodedata.normalize("NFKC", label).casefold()
        groups[" ".join(folded.replace("_", " ").replace("-", " ").split())].append(label)
    return [
        f"classes {', '.join(map(repr, group))} differ only in case, width, spaces, '_' or "
        "'-': if they are one class, give them one name"
        for group in groups.values()
        if len(group) > 1
    ]


def respelled_classes(spellings: dict[str, set[str]]) -> list[str]:
    """A warning per class read from names that differ only in Unicode normalization.

    `spellings` maps each class to the folder names or labels it came from
    (`candidates.Discovery.spellings`); they are one class, named in NFC (`class_name`).
    """
    return [
        f"class {label!r} is spelled {len(raw)} ways in the source, composed (NFC) and "
        "decomposed (NFD, as macOS writes accents): they are taken as one class"
        for label, raw in sorted(spellings.items())
        if len(raw) > 1
    ]
