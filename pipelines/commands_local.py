"""The local commands: split, run, demo (predict: `commands_predict`)."""

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator

import click

from kftransfer.components.core import folders
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.errors import Interrupted
from kftransfer.pipelines.options import (
    Command,
    GroupedOption,
    LabelIssueCount,
    LocalFolder,
    cluster_help,
    config_options,
    pipeline_options,
    pop_pipeline_arguments,
    split_list,
)
from kftransfer.pipelines.terminal import printable

LOCAL_RUN = "Local run"

DEMO_BACKBONE = "mobilenet"
DEMO_IMAGE_SIZE = 128


@click.command(
    cls=Command,
    examples=[
        "kftransfer split ~/photos --out ~/photos-split",
        "kftransfer split gs://my-bucket/photos --out gs://my-bucket/splits/v1",
        "kftransfer split labels.csv --out split/ --val-fraction 0.1 --test-fraction 0.1",
    ],
)
@click.argument("source")
@click.option("--out", required=True, help="Folder (local or gs://) to write the split to.")
@click.option(
    "--cache-uri",
    default="",
    help="Cache root (local or gs://) keeping each file's verdict: a rerun reads only new or "
    "changed files.",
)
@config_options(SplitConfig)
def split(source: str, out: str, cache_uri: str, **kwargs) -> None:
    """Validate the images of SOURCE and split them into train / validation / test.

    SOURCE is a folder of class folders (SOURCE/<class>/*.jpg), a pre-split
    train/ validation|val/ test/ tree (kept as given), or a CSV of `uri,label` rows;
    local or gs://. Writes train.csv, validation.csv, test.csv, labels.json and
    stats.json (counts, and every skipped file with its reason) to --out.
    """
    from kftransfer.components.core.folders import require_folder_path
    from kftransfer.components.core.split import split_dataset, write_split
    from kftransfer.components.core.split_checks import precheck

    config = SplitConfig.from_params(kwargs)
    require_folder_path(out)  # before the work, not after it
    precheck(source, config)  # from the listing: no image read yet
    try:
        result = split_dataset(source, config, cache_uri)
    except KeyboardInterrupt:
        raise Interrupted(_split_interrupted_line(out, cache_uri)) from None
    write_split(result, out)
    _print_split_summary(result.stats, out)


def _split_interrupted_line(out: str, cache_uri: str) -> str:
    """What a split stopped with Ctrl-C leaves, and what the same command then reads."""
    if cache_uri:
        kept = f"the images read so far keep their verdicts in {cache_uri}"
        return f"nothing was written to {out}; {kept}, so the same command reads only the rest"
    return (
        f"nothing was written to {out}; with --cache-uri a split keeps the verdicts of the "
        "images it read, and the same command then reads only the rest"
    )


def _print_split_summary(stats: dict, out: str) -> None:
    from kftransfer.components.core.layout import STATS_FILE
    from kftransfer.components.core.split_checks import skipped_line

    splits = list(stats["totals"])
    rows = [(printable(label), counts) for label, counts in stats["counts"].items()]
    rows.append(("total", stats["totals"]))
    width = max(len(label) for label in [*dict(rows), "class"])
    click.echo(f"{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in splits))
    for label, counts in rows:
        click.echo(f"{label:<{width}}  " + "  ".join(f"{counts[s]:>10}" for s in splits))
    skipped = skipped_line(stats, STATS_FILE)
    if skipped:
        click.echo(printable(skipped))
    click.echo(printable(f"wrote {out}"))


def _local_option(*names: str, **kwargs) -> Callable:
    return click.option(*names, cls=GroupedOption, group=LOCAL_RUN, **kwargs)


@click.command(
    cls=Command,
    examples=[
        "kftransfer run ~/photos --backbone mobilenet_v2 --export models/",
        "kftransfer run gs://bucket/photos --cache-uri gs://bucket/cache "
        "--export gs://bucket/models",
        "kftransfer run ~/photos --weights none --fine-tune-epochs 1 --json",
    ],
)
@click.argument("source")
@pipeline_options
@_local_option(
    "--pipeline-root",
    type=LocalFolder("SOURCE, --cache-uri and --export-uri may be gs://"),
    default="kftransfer-runs",
    show_default=True,
    help="Folder on this machine where kfp.local writes each run's artifacts.",
)
@_local_option(
    "--extract-parts",
    type=int,
    default=1,
    show_default=True,
    help="Extraction parts (a ParallelFor, as on a cluster).",
)
@_local_option(
    "--backbones",
    default="",
    metavar="A,B,...",
    help=cluster_help("backbones"),
)
@_local_option(
    "--cache/--no-cache",
    default=False,
    show_default=True,
    help="Reuse outputs of identical earlier steps (kfp.local's step cache).",
)
@_local_option(
    "--exclude-label-issues",
    type=LabelIssueCount(),
    default=None,
    metavar="N|auto",
    help="Run twice: the second run leaves out the first run's N most likely mislabelled "
    "images (auto: every flagged one) and is the one reported.",
)
@_local_option("--json", "as_json", is_flag=True, help="Print one JSON summary.")
@click.pass_obj
def run(
    obj: dict,
    source: str,
    pipeline_root: str,
    extract_parts: int,
    backbones: str,
    cache: bool,
    exclude_label_issues: int | None,
    as_json: bool,
    **kwargs,
) -> None:
    """Run the whole pipeline locally (kfp.local) on SOURCE.

    SOURCE is a folder of class folders, a train/validation/test tree, or a CSV of
    `uri,label` rows; local or gs://. Every option but the local run's is a pipeline
    parameter.
    """
    from kftransfer.pipelines.runs import run_locally
    from kftransfer.pipelines.settings import ClusterSettings
    from kftransfer.pipelines.summary import exclusion_list, format_summary

    arguments = {"source": source, **pop_pipeline_arguments(kwargs)}
    settings = ClusterSettings(extract_parts=extract_parts, backbones=split_list([backbones]))
    with only_results_on_stdout():
        summary = run_locally(arguments, pipeline_root, settings, cache, obj["verbose"])
        if exclude_label_issues is not None and summary["trust"]["label_issues_csv"]:
            first = summary
            arguments["exclude"], count = exclusion_list(
                first, exclude_label_issues, arguments.get("exclude", "")
            )
            summary = run_locally(arguments, pipeline_root, settings, cache, obj["verbose"])
            summary["excluded_label_issues"] = {
                "count": count, "list": arguments["exclude"], "first_run": first["run"]
            }  # fmt: skip
    click.echo(json.dumps(summary, indent=1) if as_json else format_summary(summary))


@contextlib.contextmanager
def only_results_on_stdout() -> Iterator[None]:
    """Sends whatever the block prints on stdout (Keras, TensorFlow, kfp) to stderr.

    stdout then holds only a command's result (the table, or one JSON document), which
    scripts parse.
    """
    with contextlib.redirect_stdout(sys.stderr):
        yield


def resolve_demo_weights(weights: str) -> str:
    """The weights file given, else `imagenet` if Keras can download it, else `none` (warned)."""
    if weights:
        return weights
    import keras

    try:
        shape = (DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE, 3)
        keras.applications.MobileNet(include_top=False, weights="imagenet", input_shape=shape)
        return "imagenet"
    except Exception as err:  # noqa: BLE001 - offline, proxy, certificate: all the same here
        click.echo(
            f"warning: cannot download the ImageNet weights ({type(err).__name__}); the demo "
            "runs with random weights and will learn little. Pass --weights FILE (a MobileNet "
            "notop .weights.h5) or set KFTRANSFER_WEIGHTS.",
            err=True,
        )
        return "none"


@click.command(
    cls=Command,
    examples=[
        "kftransfer demo",
        "kftransfer demo --weights ~/mobilenet_1.0_224_imagenet_notop.weights.h5",
    ],
)
@click.option(
    "--weights",
    envvar="KFTRANSFER_WEIGHTS",
    default="",
    help="MobileNet notop .weights.h5 file (env KFTRANSFER_WEIGHTS); default: "
    "Keras' ImageNet download.",
)
@click.option(
    "--out",
    type=LocalFolder(),
    default="kftransfer-demo",
    show_default=True,
    help="Folder on this machine for runs, the feature cache and exported models.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary.")
@click.pass_obj
def demo(obj: dict, weights: str, out: str, as_json: bool) -> None:
    """Run the whole pipeline locally on 600 bundled Fashion-MNIST photos.

    MobileNet with ImageNet weights at 128 px: split, bottleneck features, head, fine-tuning,
    evaluation, export to OUT/models. A few minutes on a laptop CPU.
    """
    from importlib import resources

    from kftransfer.components.core import storage
    from kftransfer.components.core.errors import UserError
    from kftransfer.pipelines.runs import run_locally
    from kftransfer.pipelines.summary import display_path, format_summary

    try:  # before the weights' download, and named as given (it was as --pipeline-root)
        folders.require_folder_path(out)
    except storage.StorageError as err:
        raise UserError(f"--out {err}") from None
    source = str(resources.files("kftransfer.pipelines") / "demo_data" / "fashion-mnist")
    with only_results_on_stdout():
        arguments = {
            "source": display_path(source),
            "backbone": DEMO_BACKBONE,
            "image_size": DEMO_IMAGE_SIZE,
            "weights": resolve_demo_weights(weights),
            "cache_uri": display_path(os.path.join(out, "cache")),
            "export_uri": display_path(os.path.join(out, "models")),
        }
        summary = run_locally(arguments, os.path.join(out, "runs"), verbose=obj["verbose"])
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    click.echo(format_summary(summary))
    if summary["exported"]:
        sneakers = os.path.join(source, "sneaker")
        example = display_path(os.path.join(sneakers, sorted(os.listdir(sneakers))[0]))
        click.echo(f"try:      kftransfer predict {arguments['export_uri']} {example}")
