"""Choosing among backbones by their heads: `--backbones a,b,c` (issue 19).

Each backbone's features are extracted once and a head is trained on them (in parallel on
a cluster, one loop iteration each); the head with the best validation accuracy (then the
lowest validation loss; then the first listed) wins, and only its backbone is fine-tuned.
The test split plays no part. The chosen head and features folders are copied to the
choosing step's outputs, so fine-tuning, evaluation and export read one ordinary head and
features folder, as after a single-backbone run.
"""

from kftransfer.components.core import folders, layout
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.layout import FeatureSpec, read_manifest
from kftransfer.components.core.progress import LOGGER


def choose_backbone(
    head_uris: list[str], features_uris: list[str], head_out: str, features_out: str
) -> dict:
    """Copies the best head and the features it was trained on; returns the choice.

    Heads are paired with features by the settings they were trained on (the order of
    the two lists does not matter).

    Args:
        head_uris: head stage folders, one per backbone.
        features_uris: features folders, one per backbone.
        head_out: where the chosen head's stage folder goes.
        features_out: where its features folder goes.

    Returns:
        `chosen_backbone`, `backbone_candidates` (each one's validation numbers, in the
        order given) and flat `backbone_<i>_val_accuracy` numbers for KFP metrics.

    Raises:
        UserError: a head whose features are not among `features_uris`.
    """
    by_key = {
        FeatureSpec.from_manifest(read_manifest(uri)).cache_key(): uri for uri in features_uris
    }
    candidates, features_of = [], {}
    for uri in head_uris:
        summary = layout.read_stage_summary(uri)
        if summary.get("features_key") not in by_key:
            raise UserError(
                f"head {uri} was trained on features that are not among the candidates: "
                "re-run its extraction and head training"
            )
        features_of[uri] = by_key[summary["features_key"]]
        candidates.append({"backbone": summary["backbone"], "head": uri, **_numbers(summary)})
    best = max(candidates, key=lambda c: (c["val_accuracy"], -c["val_loss"]))
    folders.copy_folder(best["head"], head_out)
    folders.copy_folder(features_of[best["head"]], features_out)
    for candidate in candidates:
        candidate["chosen"] = candidate is best
        LOGGER.info(
            "backbone %s: head validation accuracy %.4f, loss %.4f%s",
            *(candidate["backbone"], candidate["val_accuracy"], candidate["val_loss"]),
            " (chosen)" if candidate["chosen"] else "",
        )
    choice = {"chosen_backbone": best["backbone"], "backbone_candidates": candidates}
    _add_choice_to_head_summary(head_out, choice)
    return {
        **choice,
        **{f"backbone_{i}_val_accuracy": c["val_accuracy"] for i, c in enumerate(candidates)},
    }


def _numbers(summary: dict) -> dict[str, float]:
    return {
        key: summary[key]
        for key in ("val_accuracy", "val_loss", "epochs", "seconds_per_epoch")
        if key in summary
    }


def _add_choice_to_head_summary(head_stage: str, choice: dict) -> None:
    """The chosen head's summary records the choice (the report shows it)."""
    summary = layout.read_stage_summary(head_stage)
    layout.write_stage_summary(head_stage, {**summary, "backbones": choice["backbone_candidates"]})
