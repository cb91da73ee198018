"""The production model against the candidate: compared on the same test images, or why not."""

from typing import NamedTuple

import keras

from kftransfer.components.core.backbones import fingerprint
from kftransfer.components.core.blessing import changed_classes
from kftransfer.components.core.candidates import class_name
from kftransfer.components.core.export import exported_evaluation, load_exported
from kftransfer.components.core.layout import split_rule_change
from kftransfer.components.core.metrics import classification_metrics
from kftransfer.components.core.storage import join
from kftransfer.components.core.versions import latest_version


class Production(NamedTuple):
    """The production model against the candidate.

    Attributes:
        metrics: its metrics on the same test images (None when not compared).
        version: its version (None when there is none).
        note: why it was not compared ('' when it was).
        class_change: how its classes differ (`changed_classes`; '' when they do not).
        same_weights: its weights equal the candidate's.
    """

    metrics: dict | None
    version: str | None
    note: str = ""
    class_change: str = ""
    same_weights: bool = False


def compare_with_production(
    destination: str, labels: list[str], rule: dict, test, top_k: int, candidate: keras.Model
) -> Production:
    """What the production model (`destination`'s latest version) scores on the same images.

    Not compared when it has other classes, or was trained on a split of another rule
    (`rule`, `layout.split_rule`): it may have trained on this run's test images.

    Args:
        destination: the export destination ('' = none).
        labels: the candidate's class names, in output order.
        rule: this run's split rule.
        test: the test images (`evaluate.HeldOutImages`).
        top_k: k of the top-k accuracy.
        candidate: the candidate model, whose weights production's may equal.
    """
    if not destination:
        return Production(None, None, "no export destination given: nothing to compare with")
    version = latest_version(destination)
    if version is None:
        return Production(None, None, f"no production model at {destination} yet")
    folder = join(destination, version)
    model, production_labels = load_exported(folder)
    change = changed_classes([class_name(c) for c in production_labels], labels, version)
    if change:
        return Production(None, version, change, class_change=change)
    recorded = exported_evaluation(folder).get("split_rule")
    if recorded and (other := split_rule_change(recorded, rule)):
        note = (
            f"production version {version} was trained on another split ({other}): judged "
            "here it would score images it trained on; not compared"
        )
        return Production(None, version, note)
    probabilities, kept = test.predict(model)
    metrics = classification_metrics(test.y_true[kept], probabilities, labels, top_k)
    return Production(metrics, version, same_weights=fingerprint(model) == fingerprint(candidate))
