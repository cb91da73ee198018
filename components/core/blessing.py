"""The blessing: is the new model good enough to export? Every reason is spelled out."""

from dataclasses import dataclass, field

from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.layout import UNKNOWN, unknown_is_ambiguous

LISTED_CLASSES = 10  # a failing recall floor names at most this many classes


@dataclass
class Verdict:
    """Whether the candidate is blessed, and one line per check (`PASS: ...`/`FAIL: ...`)."""

    blessed: bool
    reasons: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, reasons: list[str]) -> "Verdict":
        """The verdict of these lines: blessed when every one is a `PASS: ...`."""
        return cls(all(reason.startswith("PASS") for reason in reasons), reasons)


def bless(
    candidate: dict,
    production: dict | None,
    config: EvalConfig,
    note: str = "",
    same_weights: bool = False,
    skill: list[str] = (),
    labels: list[str] = (),
    min_confidence: float = 0.0,
    class_change: str = "",
) -> Verdict:
    """Judges candidate metrics against no skill, the threshold, production and the recall floor.

    Also fails a model that would answer `unknown` both for a class of that name and when
    unsure (its answers would be ambiguous).

    Args:
        candidate: the fine-tuned model's `metrics.classification_metrics`.
        production: the production model's metrics on the same test split, or None.
        config: the thresholds.
        note: why there is no production comparison, when `production` is None.
        same_weights: the candidate's weights equal the production model's (a rerun on
            unchanged data, every step cached): nothing new to export.
        skill: the no-skill gate's `PASS:`/`FAIL:` lines (`significance.skill_reasons`),
            first in the verdict: a model no better than no skill never ships.
        labels: the class names.
        min_confidence: the calibrated probability below which the exported model answers
            `unknown` (0 = never).
        class_change: how the candidate's classes differ from the production model's
            (`changed_classes`), when they do: not blessed without `allow_class_change`.
    """
    reasons = list(skill)

    def check(ok: bool, text: str) -> None:
        reasons.append(f"{'PASS' if ok else 'FAIL'}: {text}")

    accuracy = candidate["accuracy"]
    check(
        accuracy >= config.min_accuracy,
        f"test accuracy {accuracy:.4f} {'>=' if accuracy >= config.min_accuracy else '<'} "
        f"the threshold {config.min_accuracy:.4f}",
    )
    if class_change:
        allowed = config.allow_class_change
        then = (
            "exported as --allow-class-change says"
            if allowed
            else "if intended, pass --allow-class-change (else restore the source's class folders)"
        )
        check(allowed, f"{class_change}: not compared; {then}")
    elif production is None:
        check(True, note or "no production model to compare with")
    else:
        bar = production["accuracy"] - config.baseline_tolerance
        check(
            accuracy >= bar,
            f"test accuracy {accuracy:.4f} {'>=' if accuracy >= bar else '<'} the production "
            f"model's {production['accuracy']:.4f} minus the tolerance "
            f"{config.baseline_tolerance:.4f}",
        )
    if same_weights:
        check(False, "the same weights as the production model: nothing new to export")
    if config.min_class_recall > 0:
        check(*_recall_floor(candidate["per_class"], config.min_class_recall))
    if unknown_is_ambiguous(labels, min_confidence):
        check(
            False,
            f"a class is named {UNKNOWN!r}, which is also the answer below the minimum "
            f"confidence {min_confidence:.3f}: rename the class (e.g. 'other'), or set "
            "--min-confidence 0 and --target-precision 0",
        )
    return Verdict.of(reasons)


def changed_classes(production: list[str], labels: list[str], version: str) -> str:
    """How `labels` differ from the production model's classes, for the verdict ('' if not).

    Args:
        production: the production model's class names, in output order.
        labels: the candidate's class names, in output order.
        version: the production model's version, named in the text.
    """
    if production == labels:
        return ""
    removed = [c for c in production if c not in labels]
    added = [c for c in labels if c not in production]
    parts = [
        f"{verb} {_listed(names)}" for verb, names in (("lost", removed), ("new", added)) if names
    ]
    return f"the classes differ from the production model's (version {version}): " + (
        "; ".join(parts) or "the same classes in another order"
    )


def _listed(names: list[str]) -> str:
    """Up to `LISTED_CLASSES` quoted names, then how many more."""
    extra = len(names) - LISTED_CLASSES
    return ", ".join(repr(c) for c in names[:LISTED_CLASSES]) + (
        f" and {extra} more" if extra > 0 else ""
    )


def _recall_floor(per_class: dict[str, dict], floor: float) -> tuple[bool, str]:
    """Whether every class with test images reaches the recall floor, and the line saying so.

    A class without test images has no recall: it is named, not failed (it would fail
    every run until a test image of it turned up).
    """
    untested = sorted(c for c, s in per_class.items() if not s["support"])
    low = {c: s["recall"] for c, s in per_class.items() if s["support"] and s["recall"] < floor}
    text = _low_recall_text(low, floor) if low else f"every class's recall >= the floor {floor:.4f}"
    if untested:
        text += f" (not judged, no test images: {_listed(untested)})"
    return not low, text


def _low_recall_text(low: dict[str, float], floor: float) -> str:
    """Up to `LISTED_CLASSES` classes by name; more: their count and the lowest of them."""
    if len(low) <= LISTED_CLASSES:
        listed = ", ".join(f"{c!r} {r:.4f}" for c, r in sorted(low.items()))
        return f"recall of {listed} below the floor {floor:.4f}"
    lowest = sorted(low.items(), key=lambda item: (item[1], item[0]))[:LISTED_CLASSES]
    listed = ", ".join(f"{c!r} {r:.4f}" for c, r in lowest)
    return (
        f"recall of {len(low)} classes below the floor {floor:.4f}, lowest {listed}, ... "
        "(every class in evaluation.json)"
    )
