"""`kftransfer predict`: classify images with an exported model, one line per image."""

import json
import signal
from typing import TYPE_CHECKING

import click

from kftransfer.components.core.errors import Interrupted
from kftransfer.components.core.signals import signal_noted
from kftransfer.pipelines.options import Command
from kftransfer.pipelines.terminal import printable

if TYPE_CHECKING:  # imported by the command itself, so that `--help` stays fast
    from kftransfer.components.core.predict import Prediction


@click.command(
    cls=Command,
    examples=[
        "kftransfer predict models/ photo.jpg",
        "kftransfer predict gs://bucket/models/20261123143000 gs://bucket/new-photos/ --json",
        "kftransfer predict model.keras a.png b.png --top-k 1",
    ],
)
@click.argument("model")
@click.argument("images", nargs=-1, required=True)
@click.option(
    "--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Labels per image."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Images per forward pass.",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    default=None,
    help="Answer 'unknown' below this calibrated probability [default: the model's own, "
    "from serving.json; 0 = always a class].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def predict(
    model: str,
    images: tuple[str, ...],
    top_k: int,
    batch_size: int,
    min_confidence: float | None,
    as_json: bool,
) -> None:
    """Classify IMAGES (files or folders, local or gs://) with an exported MODEL.

    MODEL is an export folder (its latest version is used), a version folder, or a
    .keras file with labels.json beside it. Prints the top-k labels per image (led by
    `unknown` when the top probability is below the minimum confidence); an image
    that cannot be decoded gets an `error:` line on stderr while the others are still
    predicted, and the exit status is then 1.
    """
    from kftransfer.components.core import predict as core

    network, labels, own_threshold = core.load_predictor(model)
    threshold = own_threshold if min_confidence is None else min_confidence
    core.check_unknown_free(labels, threshold, model)
    found = core.find_images(list(images))
    if left_out := found.left_out():
        click.echo(f"note: {left_out}", err=True)
    failed = answered = 0
    results = core.predict(network, labels, found.uris, top_k, batch_size, threshold)
    # Ctrl-C is acted on between two answers, not inside TensorFlow (where an exception
    # can abort the process: SIGABRT); a second Ctrl-C stops it wherever it is.
    try:
        with signal_noted(signal.SIGINT, signal.default_int_handler) as ctrl_c:
            for result in results:
                failed += _print_prediction(result, as_json)
                answered += 1
                if ctrl_c is not None and ctrl_c.is_set():
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        results.close()  # stops the input pipeline's threads before the process exits
        raise Interrupted(f"answered {answered} of {len(found.uris)} images") from None
    if failed:
        raise SystemExit(1)


def _print_prediction(result: "Prediction", as_json: bool) -> bool:
    """Prints one image's answer (or its `error:` line); whether it was an error."""
    from kftransfer.components.core.predict import shown  # imported by the command already

    uri = printable(result.uri)
    if result.error:
        click.echo(f"error: {uri}: {result.error}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    elif not result.error:
        ranked = ", ".join(f"{printable(label)} {shown(p, 3):.3f}" for label, p in result.top)
        answer = f"{printable(result.label)} ({ranked})" if result.abstained else ranked
        click.echo(f"{uri}: {answer}")
    return bool(result.error)
