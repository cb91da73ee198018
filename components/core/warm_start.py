"""Warm start: begin fine-tuning from the production model instead of ImageNet + a new head.

A scheduled retrain on a growing folder otherwise relearns every night what the model in
production already knows. The production model (the export destination's `latest`) is
used only when it is the same network on the same inputs: the same classes in the same
order, the same backbone setup (`layout.FeatureSpec`: backbone and weights, input size,
pooling, preprocessing, feature layer, decoding; recorded in its `evaluation.json`),
weights of the same shapes, and a split of the same rule (`layout.split_rule`): with
another seed or fraction, images it trained on may be in this run's test split, and the
blessing would judge the new model on images its weights learnt. Anything else is a cold
start, with the reason logged and recorded in the stage summary. (Weight shapes alone let
a change of input size, pooling or preprocessing through: a global-pooling backbone's
weights have the same shapes at any of them.)

Each warm start counts how many came in a row (`warm_starts` in the fine-tuning summary,
read back from the production version's evaluation.json), so `--cold-start-every N` can
force a cold retrain after N - 1 warm ones: weights that only ever start from yesterday's
never get the chance to leave a basin an earlier dataset put them in.
"""

from dataclasses import dataclass

import keras

from kftransfer.components.core import storage
from kftransfer.components.core.candidates import same_classes
from kftransfer.components.core.export import exported_evaluation, load_exported
from kftransfer.components.core.layout import FeatureSpec, split_rule_change
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.versions import latest_version


@dataclass(frozen=True)
class Start:
    """Where fine-tuning's weights started.

    Attributes:
        version: the production version started from ('' for a cold start).
        note: one line saying what happened and why.
        warm_starts: warm starts in a row ending with this one (0 for a cold start).
    """

    version: str
    note: str
    warm_starts: int = 0


def warm_start(
    model: keras.Model,
    labels: list[str],
    export_uri: str,
    split_rule: dict,
    spec: FeatureSpec,
    cold_start_every: int = 0,
) -> Start:
    """Loads the production model's weights into `model` when it is the same network.

    Args:
        model: the fine-tuning model (backbone + head), built and compiled.
        labels: its class names in output order.
        export_uri: the export destination whose latest version is in production.
        split_rule: this run's `layout.split_rule`; production must have been trained on
            a split of the same rule.
        spec: this run's backbone setup; production must have been built on the same.
        cold_start_every: start cold when this would be the N-th start in a row without a
            cold one (0 = never forced).
    """
    version = latest_version(export_uri) if export_uri else None
    if version is None:
        note = "cold start: no production model" + (f" at {export_uri}" if export_uri else "")
        return _said(Start("", note))
    folder = storage.join(export_uri, version)
    evaluation = exported_evaluation(folder)
    chain = _warm_starts(evaluation) + 1
    if cold_start_every and chain >= cold_start_every:
        return _said(Start("", f"cold start: every {cold_start_every} runs (--cold-start-every)"))
    production, production_labels = load_exported(folder)
    if not same_classes(production_labels, labels):
        return _said(Start("", f"cold start: production version {version} has other classes"))
    recorded = evaluation.get("split_rule")
    changed = split_rule_change(recorded, split_rule) if recorded else "not recorded"
    if changed:
        note = (
            f"cold start: production version {version} was trained on another split "
            f"({changed}): images it trained on may be in this run's test split"
        )
        return _said(Start("", note))
    recorded_spec = evaluation.get("feature_spec")
    network = spec.network_change(recorded_spec) if recorded_spec else "not recorded"
    if network:
        note = f"cold start: production version {version} was built on another setup ({network})"
        return _said(Start("", note))
    ours, theirs = model.get_weights(), production.get_weights()
    if [w.shape for w in ours] != [w.shape for w in theirs]:
        note = f"cold start: production version {version} is another architecture"
        return _said(Start("", note))
    model.set_weights(theirs)
    return _said(Start(version, f"warm start from production version {version}", chain))


def _warm_starts(evaluation: dict) -> int:
    """How many warm starts in a row led to a version (0 when its evaluation records none)."""
    return int(evaluation.get("training", {}).get("fine_tuned", {}).get("warm_starts", 0))


def _said(start: Start) -> Start:
    LOGGER.info("fine-tune: %s", start.note)
    return start
