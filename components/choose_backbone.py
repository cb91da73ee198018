"""KFP step: keep the backbone whose head validates best (`--backbones a,b,c`)."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from kftransfer.components.component import kftransfer_component


@kftransfer_component()
def choose_backbone(
    heads: Input[list[Model]],
    candidates: Input[list[Dataset]],
    head: Output[Model],
    features: Output[Dataset],
    metrics: Output[Metrics],
):
    """Copies the head with the best validation accuracy, and its features.

    Args:
        heads: one trained head per backbone (dsl.Collected).
        candidates: one features folder per backbone (dsl.Collected).
        head: the chosen head's stage folder.
        features: the chosen backbone's features folder.
        metrics: each backbone's head validation accuracy.
    """
    from kftransfer.components.core.backbone_choice import choose_backbone
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.publish import publish

    setup_logging()
    choice = choose_backbone(
        [h.path for h in heads], [c.path for c in candidates], head.path, features.path
    )
    publish(metrics, choice)
    summary = {"chosen_backbone": choice["chosen_backbone"], "backbones": len(heads)}
    publish(head, summary, write_file=False)
    publish(features, summary, write_file=False)
