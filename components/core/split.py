"""The train / validation / test split: validated, stratified, stable under additions.

Each image's split is a pure function of its content hash and the seed (`assign_split`),
applied within every class: adding images never moves an existing one, and identical
content always lands in one split, so a scheduled retraining can never leak test images
into training. Per-class counts therefore follow the fractions in expectation (binomial
noise), not to the image: that is the price of stability.
"""

import collections
import gc
import hashlib
from dataclasses import dataclass

from kftransfer.components.core import layout
from kftransfer.components.core.candidates import (
    BAD_FILE_NAME,
    MISNAMED,
    PRESPLIT,
    Candidate,
    Discovery,
    Skipped,
)
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.exclusions import read_exclusions, unmatched_exclusions
from kftransfer.components.core.layout import SPLITS, Row
from kftransfer.components.core.parallel import map_ordered
from kftransfer.components.core.progress import LOGGER, Progress
from kftransfer.components.core.signals import sigterm_deferred
from kftransfer.components.core.sources import discover
from kftransfer.components.core.split_checks import (
    look_alike_classes,
    require_usable,
    respelled_classes,
)
from kftransfer.components.core.validation import ImageCheck, check_image
from kftransfer.components.core.validation_cache import (
    ValidationCache,
    from_record,
    listing_key,
    to_record,
)

SPLIT_PRIORITY = {"test": 0, "validation": 1, "train": 2}  # who keeps a duplicate
CHECK_THREADS = 16


@dataclass
class SplitResult:
    """The outcome of `split_dataset`: class names, rows and the statistics."""

    labels: list[str]
    rows: list[Row]
    stats: dict


def assign_split(sha256: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """The split of one image, a pure function of its content hash and the seed.

    `u = first 8 bytes of sha256("{seed}:{sha256}")` as a fraction of 2**64; test when
    `u < test_fraction`, validation when `u < test_fraction + val_fraction`, else train.
    This formula is a contract: changing it would reshuffle every user's splits.
    """
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "validation"
    return "train"


def split_dataset(source: str, config: SplitConfig, cache_uri: str = "") -> SplitResult:
    """Validates every image of `source` and splits the valid ones.

    With `cache_uri`, only files the listing shows to be new or changed are read and
    decoded; the others' verdicts come from the validation cache (`validation_cache`).

    Raises:
        UserError: the source is missing or empty, has fewer than two classes, a class
            below `config.min_images_per_class`, or no valid image at all.
    """
    # A few objects per listed file set off full garbage collections, and each re-scans
    # every live object, TensorFlow's hundreds of thousands too (0.17 s a pass, measured).
    # Freezing what is alive now keeps those passes to what the split itself allocates.
    gc.freeze()
    found = discover(source)
    LOGGER.info("%s: %s layout, %d candidate files", source, found.layout, len(found.candidates))
    excluded = read_exclusions(config.exclude)
    skipped = list(found.skipped) + [
        Skipped(c.uri, "excluded", f"listed in {config.exclude}")
        for c in found.candidates
        if c.uri in excluded
    ]
    candidates = [c for c in found.candidates if c.uri not in excluded]
    skipped += [
        Skipped(c.uri, BAD_FILE_NAME, MISNAMED) for c in candidates if c.uri in found.misnamed
    ]
    readable = [c for c in candidates if c.uri not in found.misnamed]
    checks, counts = _check_all(readable, config, cache_uri)
    valid = []
    for candidate, check in zip(readable, checks, strict=True):
        if check.problem:
            skipped.append(Skipped(candidate.uri, check.problem, check.detail))
        else:
            valid.append((candidate, check))
    kept, duplicates, conflicts = _resolve_duplicates(valid)
    skipped += duplicates
    fractions = _hash_fractions(found, config)
    rows = [_row(candidate, check, config, fractions) for candidate, check in kept]
    labels = require_usable(source, rows, skipped, config, candidates, found.empty_classes)
    notes = [{"uri": c.uri, "note": check.note} for c, check in valid if check.note]
    stats = _stats(source, found, config, labels, rows, skipped, notes, conflicts)
    stats["validation"] = counts
    stats["warnings"] += unmatched_exclusions(excluded, found.candidates, config.exclude, source)
    return SplitResult(labels, sorted(rows, key=lambda r: (r.label, r.uri)), stats)


def _check_all(candidates: list[Candidate], config: SplitConfig, cache_uri: str):
    """Every candidate's verdict, and how many were `checked` (read) or `reused`."""
    cache = ValidationCache(cache_uri, config) if cache_uri else None
    stored = cache.load() if cache else {}
    keys = [listing_key(c.listed) if c.listed else None for c in candidates]
    checks: list[ImageCheck | None] = [
        from_record(c.uri, stored[key]) if key in stored else None
        for c, key in zip(candidates, keys, strict=True)
    ]
    todo = [i for i, check in enumerate(checks) if check is None]
    progress = Progress("validate images", total=len(todo))

    def check(index: int) -> ImageCheck:
        candidate = candidates[index]
        size = candidate.listed.size if candidate.listed else None
        return check_image(candidate.uri, config.min_image_side, config.max_image_pixels, size)

    results = map_ordered(check, todo, threads=CHECK_THREADS)
    with sigterm_deferred() as stop_if_terminated:  # a stopped pod keeps what was read too
        try:
            for index, result in zip(todo, results, strict=True):
                stop_if_terminated()
                checks[index] = result
                record = to_record(result)
                if cache and keys[index] and record:
                    cache.add(keys[index], record)
                progress.update()
        finally:  # also on Ctrl-C, SIGTERM and errors: the next split reads only the rest
            results.close()  # cancels the reads not yet started (nothing once all are read)
            if cache:
                cache.checkpoint()
    progress.finish()
    if cache:
        cache.save()
    reused = len(candidates) - len(todo)
    LOGGER.info("validate images: %d read, %d known from the cache", len(todo), reused)
    return checks, {"checked": len(todo), "reused": reused}


def _hash_fractions(found: Discovery, config: SplitConfig) -> tuple[float, float]:
    """The validation and test fractions `assign_split` gives the images it splits.

    Class folders and CSVs: every image, by `--val-fraction` and `--test-fraction`. A
    pre-split tree keeps its folders, and a split it lacks (a train/ and test/ tree with
    no validation/, as many datasets ship) is taken out of train/ by the same rule.
    """
    if found.layout != PRESPLIT:
        return config.val_fraction, config.test_fraction
    given = {candidate.split for candidate in found.candidates}
    missing = [split for split in ("validation", "test") if split not in given]
    fractions = {"validation": config.val_fraction, "test": config.test_fraction}
    for split in missing:
        LOGGER.info("no %s/ folder: %g of train/ goes to %s", split, fractions[split], split)
    return tuple(fractions[split] if split in missing else 0.0 for split in fractions)


def _row(
    candidate: Candidate, check: ImageCheck, config: SplitConfig, fractions: tuple[float, float]
) -> Row:
    split = candidate.split
    if split in (None, "train"):
        split = assign_split(check.sha256, config.seed, *fractions)
    return Row(candidate.uri, candidate.label, check.sha256, split)


def _resolve_duplicates(valid: list[tuple[Candidate, ImageCheck]]):
    """Keeps one file per content hash; a hash with two labels keeps none (reported)."""
    by_hash: dict[str, list[tuple[Candidate, ImageCheck]]] = collections.defaultdict(list)
    for candidate, check in valid:
        by_hash[check.sha256].append((candidate, check))
    kept, skipped, conflicts = [], [], []
    for digest, group in by_hash.items():
        group.sort(key=lambda pair: (SPLIT_PRIORITY.get(pair[0].split or "", 0), pair[0].uri))
        labels = sorted({candidate.label for candidate, _ in group})
        if len(labels) > 1:
            files = [{"uri": c.uri, "label": c.label} for c, _ in group]
            conflicts.append({"sha256": digest, "files": files})
            detail = "identical content labelled " + " and ".join(repr(x) for x in labels)
            skipped += [Skipped(c.uri, "label_conflict", detail) for c, _ in group]
            continue
        keeper = group[0][0]
        kept.append(group[0])
        skipped += [
            Skipped(c.uri, "duplicate", f"same content as {keeper.uri}") for c, _ in group[1:]
        ]
    return kept, skipped, conflicts


def _stats(source, found: Discovery, config, labels, rows, skipped, notes, conflicts) -> dict:
    counts = {label: dict.fromkeys(SPLITS, 0) for label in labels}
    for row in rows:
        counts[row.label][row.split] += 1
    totals = {split: sum(c[split] for c in counts.values()) for split in SPLITS}
    warnings = [
        f"class {label!r} has no {split} images"
        for label in labels
        for split in SPLITS
        if counts[label][split] == 0
    ]
    warnings += look_alike_classes(labels) + respelled_classes(found.spellings)
    for warning in warnings:
        LOGGER.warning(warning)
    return {
        "source": source,
        "layout": found.layout,
        "config": {
            "val_fraction": config.val_fraction,
            "test_fraction": config.test_fraction,
            "seed": config.seed,
        },
        "counts": counts,
        "totals": totals,
        "skipped_by_reason": dict(collections.Counter(s.reason for s in skipped)),
        "skipped": [{"uri": s.uri, "reason": s.reason, "detail": s.detail} for s in skipped],
        "notes": notes,
        "label_conflicts": conflicts,
        "warnings": warnings,
    }


def write_split(result: SplitResult, out_uri: str) -> None:
    """Writes the split folder at `out_uri` all at once (see `layout.write_split_folder`)."""
    layout.write_split_folder(out_uri, result.labels, result.rows, result.stats)


def split_to_folder(
    source: str, out_uri: str, config: SplitConfig, fingerprint: str = "", cache_uri: str = ""
) -> dict:
    """Splits `source` into the split folder `out_uri`; returns the counts for metadata.

    Args:
        source: the dataset (folder, pre-split tree or CSV; local or gs://).
        out_uri: the split folder to write.
        config: the split's parameters.
        fingerprint: what the source held when listed (recorded in `stats.json`).
        cache_uri: the cache root whose validation records spare re-reading known files.
    """
    result = split_dataset(source, config, cache_uri)
    result.stats["source_fingerprint"] = fingerprint
    write_split(result, out_uri)
    skipped = len(result.stats["skipped"])
    summary = {**result.stats["totals"], "classes": len(result.labels), "skipped": skipped}
    return {**summary, **{f"validation_{k}": v for k, v in result.stats["validation"].items()}}
