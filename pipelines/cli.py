"""`kftransfer`: split, run, compile, submit and schedule transfer-learning pipelines."""

import logging
import os

import click

from kftransfer.components import __version__
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.progress import setup_logging
from kftransfer.pipelines.options import config_options, pop_config

EXIT_USER_ERROR = 2


class _Cli(click.Group):
    """Turns a UserError into one `error:` line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(EXIT_USER_ERROR)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kftransfer")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def cli(verbose: bool) -> None:
    """Image-classification transfer learning as a Kubeflow Pipelines DAG."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)


@cli.command()
@click.argument("source")
@click.option("--out", required=True, help="Folder (local or gs://) to write the split to.")
@config_options(SplitConfig)
def split(source: str, out: str, **kwargs) -> None:
    r"""Validate the images of SOURCE and split them into train / validation / test.

    SOURCE is a folder of class folders (SOURCE/<class>/*.jpg), a pre-split
    train/ validation|val/ test/ tree (kept as given), or a CSV of `uri,label` rows;
    local or gs://. Writes train.csv, validation.csv, test.csv, labels.json and
    stats.json (counts, and every skipped file with its reason) to --out.

    \b
    Examples:
      kftransfer split ~/photos --out ~/photos-split
      kftransfer split gs://my-bucket/photos --out gs://my-bucket/splits/v1
      kftransfer split labels.csv --out split/ --val-fraction 0.1 --test-fraction 0.1
    """
    from kftransfer.components.core.split import split_dataset, write_split

    result = split_dataset(source, pop_config(SplitConfig, kwargs))
    write_split(result, out)
    _print_split_summary(result.stats, out)


def _print_split_summary(stats: dict, out: str) -> None:
    splits = list(stats["totals"])
    width = max(len(label) for label in [*stats["counts"], "class"])
    click.echo(f"{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in splits))
    rows = [*stats["counts"].items(), ("total", stats["totals"])]
    for label, counts in rows:
        click.echo(f"{label:<{width}}  " + "  ".join(f"{counts[s]:>10}" for s in splits))
    skipped = stats["skipped_by_reason"]
    if skipped:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        click.echo(f"skipped {sum(skipped.values())} files ({reasons}): see stats.json")
    click.echo(f"wrote {out}")


@cli.command(name="compile")
@click.option("-o", "--output", default="pipeline.yaml", show_default=True, help="YAML to write.")
def compile_command(output: str) -> None:
    r"""Compile the pipeline to a KFP v2 YAML package.

    \b
    Example:
      kftransfer compile -o pipeline.yaml
    """
    from kftransfer.pipelines.transfer_learning import compile_pipeline

    compile_pipeline(output)
    click.echo(f"wrote {output}")


@cli.command()
@click.option("--out", default="kftransfer-demo", show_default=True, help="Output folder.")
def demo(out: str) -> None:
    """Split the bundled Fashion-MNIST demo photos (the whole DAG joins as it lands)."""
    from importlib import resources

    from kftransfer.components.core.split import split_dataset, write_split

    source = str(resources.files("kftransfer.pipelines") / "demo_data" / "fashion-mnist")
    result = split_dataset(source, SplitConfig())
    write_split(result, os.path.join(out, "splits"))
    _print_split_summary(result.stats, os.path.join(out, "splits"))


@cli.command()
@click.argument("model")
@click.argument("images", nargs=-1, required=True)
@click.option("--top-k", default=3, show_default=True, help="Labels to show per image.")
@click.option("--batch-size", default=32, show_default=True, help="Images per forward pass.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def predict(
    model: str, images: tuple[str, ...], top_k: int, batch_size: int, as_json: bool
) -> None:
    r"""Classify IMAGES (files or folders, local or gs://) with an exported MODEL.

    MODEL is an export folder (its latest version is used), a version folder, or a
    .keras file with labels.json beside it. Prints the top-k labels per image; an image
    that cannot be decoded gets an `error:` line on stderr while the others are still
    predicted, and the exit status is then 1.

    \b
    Examples:
      kftransfer predict models/ photo.jpg
      kftransfer predict gs://bucket/models/20261123143000 gs://bucket/new-photos/ --json
      kftransfer predict model.keras a.png b.png --top-k 1
    """
    import json

    from kftransfer.components.core import predict as core

    network, labels = core.load_predictor(model)
    uris = core.find_images(list(images))
    if not uris:
        raise UserError(f"no image files in {', '.join(images)}")
    failed = 0
    for result in core.predict(network, labels, uris, top_k, batch_size):
        if result.error:
            failed += 1
            click.echo(f"error: {result.uri}: {result.error}", err=True)
        if as_json:
            click.echo(json.dumps(result.to_json()))
        elif not result.error:
            ranked = ", ".join(f"{label} {p:.3f}" for label, p in result.top)
            click.echo(f"{result.uri}: {ranked}")
    if failed:
        raise SystemExit(1)


def main() -> None:
    """Console entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli(prog_name="kftransfer")
