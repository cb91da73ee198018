"""The kftransfer DAG: split -> extract -> train head -> fine-tune -> evaluate -> export.

With `--backbones a,b,c`, extraction and head training run once per backbone in a loop,
and a `choose_backbone` step keeps the best head on validation and its features.

A cheap, never-cached `fingerprint_source` step comes first: the split (and so every step
after it) is a KFP cache hit only while the source holds the same files, and any backbone
or weights file named by path is unchanged.

`build_pipeline(settings)` makes the pipeline for a set of compile-time Kubernetes settings
(GPUs, nodes, resources, retries, parallel extraction). Its parameters are `source` and
every field of the config dataclasses (`core.config.pipeline_fields`), with their
defaults and help, so a new field reaches the pipeline and its step without an edit here.
"""

import inspect
import os
import tempfile
from collections.abc import Callable

import yaml
from kfp import compiler, dsl

from kftransfer.components.choose_backbone import choose_backbone
from kftransfer.components.core import storage
from kftransfer.components.core.config import (
    EvalConfig,
    ExtractConfig,
    FineTuneConfig,
    HeadConfig,
    SplitConfig,
    field_help,
    pipeline_fields,
)
from kftransfer.components.core.errors import UserError
from kftransfer.components.evaluate_model import evaluate_model
from kftransfer.components.export_model import export_model
from kftransfer.components.extract_bottlenecks import extract_bottlenecks
from kftransfer.components.fine_tune import fine_tune
from kftransfer.components.fingerprint_source import fingerprint_source
from kftransfer.components.merge_features import merge_features
from kftransfer.components.split_data import split_data
from kftransfer.components.train_head import train_head
from kftransfer.pipelines.settings import BACKOFF_FACTOR, ClusterSettings
from kftransfer.pipelines.steps import STEPS, find_step

PIPELINE_NAME = "kftransfer"
DESCRIPTION = "Image-classification transfer learning."


def pipeline_signature() -> inspect.Signature:
    """`source`, then every run parameter with its default, in `pipeline_fields` order."""
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter("source", keyword, annotation=str)]
    parameters += [
        inspect.Parameter(name, keyword, default=f.default, annotation=f.type)
        for name, f in pipeline_fields().items()
    ]
    return inspect.Signature(parameters)


def _docstring(signature: inspect.Signature) -> str:
    """The pipeline's docstring: KFP reads each parameter's description from its Args."""
    args = [f"    {name}: {field_help(name)}" for name in signature.parameters]
    return "\n".join([f"{DESCRIPTION} See `kftransfer run --help`.", "", "Args:", *args])


def build_pipeline(settings: ClusterSettings = ClusterSettings()):  # noqa: B008 - frozen
    """The transfer-learning pipeline for these compile-time settings."""
    signature = pipeline_signature()

    def transfer_learning(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        _dag(bound.arguments, settings)

    transfer_learning.__signature__ = signature
    transfer_learning.__doc__ = _docstring(signature)
    return dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)(transfer_learning)


def _dag(p: dict, settings: ClusterSettings) -> None:
    """Calls every step; `p` holds the pipeline's parameters (KFP channels) by name."""
    backbones = ",".join(settings.backbones) if settings.backbones else p["backbone"]
    listing = fingerprint_source(source=p["source"], backbones=backbones, weights=p["weights"])
    listing = configure(listing, settings)
    split = split_data(
        source=p["source"],
        source_fingerprint=listing.output,
        cache_uri=p["cache_uri"],
        **SplitConfig.arguments(p),
    )
    splits = configure(split, settings).outputs["splits"]
    if settings.backbones:
        features, head = _choose_backbone(splits, settings, p)
    else:
        features = _extract(splits, settings, p)
        head = _train_head(features, settings, p)
    tuned = fine_tune(
        splits=splits,
        features=features,
        head=head,
        cache_uri=p["cache_uri"],
        export_uri=p["export_uri"],
        **_stage_locations(p),
        **FineTuneConfig.arguments(p),
    )
    model = configure(tuned, settings).outputs["model"]
    stages = {"splits": splits, "features": features, "head": head, "model": model}
    evaluation = evaluate_model(
        **stages, export_uri=p["export_uri"], cache_uri=p["cache_uri"], **EvalConfig.arguments(p)
    )
    configure(evaluation, settings)
    with dsl.If(evaluation.outputs["Output"] == True, "blessed"):  # noqa: E712 - KFP condition
        with dsl.If(p["export_uri"] != "", "export destination given"):
            exported = export_model(
                **stages,
                evaluation=evaluation.outputs["evaluation"],
                tflite_model=evaluation.outputs["tflite_model"],
                export_uri=p["export_uri"],
            )
            configure(exported, settings)


def _stage_locations(p: dict) -> dict:
    return {"checkpoint_uri": p["checkpoint_uri"], "tensorboard_uri": p["tensorboard_uri"]}


def _train_head(features, settings: ClusterSettings, p: dict):
    head = train_head(features=features, **_stage_locations(p), **HeadConfig.arguments(p))
    return configure(head, settings).outputs["head"]


def _choose_backbone(splits, settings: ClusterSettings, p: dict):
    """A loop over `settings.backbones` (extraction and head each), then the choice.

    Returns the chosen backbone's features and head: ordinary folders, copied by the
    choosing step, so the rest of the DAG is the single-backbone one.
    """
    params = {"splits": splits, "cache_uri": p["cache_uri"], **ExtractConfig.arguments(p)}
    del params["backbone"]  # each iteration's own
    backbones = list(settings.backbones)
    # Unnamed on purpose, like the extraction parts' loop (docs/kfp-backend.md).
    with dsl.ParallelFor(items=backbones, parallelism=len(backbones)) as backbone:
        task = extract_bottlenecks(backbone=backbone, part_index=0, part_count=1, **params)
        features = configure(task, settings).outputs["features"]
        head = _train_head(features, settings, p)
    chosen = choose_backbone(heads=dsl.Collected(head), candidates=dsl.Collected(features))
    chosen = configure(chosen, settings)
    return chosen.outputs["features"], chosen.outputs["head"]


def _extract(splits, settings: ClusterSettings, p: dict):
    """One extraction step, or a ParallelFor of `extract_parts` pods and a merge step."""
    params = {"splits": splits, "cache_uri": p["cache_uri"], **ExtractConfig.arguments(p)}
    parts = settings.extract_parts
    if parts <= 1:
        task = extract_bottlenecks(part_index=0, part_count=1, **params)
        return configure(task, settings).outputs["features"]
    # Unnamed on purpose: a named loop breaks dsl.Collected on KFP backends before 2.16
    # (kubeflow/pipelines#13239; docs/kfp-backend.md).
    with dsl.ParallelFor(items=list(range(parts)), parallelism=parts) as index:
        task = extract_bottlenecks(part_index=index, part_count=parts, **params)
        configure(task, settings, "extract bottlenecks (part)")
    merged = merge_features(parts=dsl.Collected(task.outputs["features"]))
    return configure(merged, settings).outputs["features"]


def compile_pipeline(
    output_path: str,
    settings: ClusterSettings = ClusterSettings(),  # noqa: B008 - frozen
    pipeline_root: str = "",
) -> dict:
    """Compiles the pipeline to a KFP v2 YAML package; returns its pipeline spec.

    Every executor gets its step's image (`ClusterSettings.image_for`). A `pipeline_root`
    (e.g. `gs://bucket/kfp`) becomes the package's default artifact root, which the KFP
    UI pre-fills in its run form and the backend itself never reads (docs/kfp-backend.md).

    Raises:
        UserError: the settings make a spec that breaks the KFP backend's rules.
    """
    from kftransfer.pipelines.backend_contract import spec_problems

    documents = compiled_documents(build_pipeline(settings))
    problems = spec_problems(documents[0])
    if problems:
        raise UserError("these settings break the KFP backend's rules: " + "; ".join(problems))
    for name, executor in documents[0]["deploymentSpec"]["executors"].items():
        executor["container"]["image"] = settings.image_for(find_step(name.removeprefix("exec-")))
    if pipeline_root:
        documents[0]["defaultPipelineRoot"] = pipeline_root
    if storage.is_folder(output_path):
        raise UserError(
            f"-o {output_path} is a folder: give a file, e.g. {output_path}/pipeline.yaml"
        )
    storage.write_text(output_path, yaml.safe_dump_all(documents, sort_keys=False))
    return documents[0]


def compiled_documents(pipeline: Callable) -> list[dict]:
    """The YAML documents KFP's compiler writes for `pipeline`: the spec, then the platform spec."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "pipeline.yaml")
        compiler.Compiler().compile(pipeline, package_path=raw)
        with open(raw, encoding="utf-8") as file:
            return list(yaml.safe_load_all(file))


def task_names(settings: ClusterSettings = ClusterSettings()) -> list[str]:  # noqa: B008
    """The container tasks of the compiled pipeline, in DAG order (the order of `STEPS`)."""
    spec = compiled_documents(build_pipeline(settings))[0]
    found = set()

    def visit(dag: dict) -> None:
        for name, task in dag["tasks"].items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                visit(component["dag"])
            elif "executorLabel" in component:
                found.add(name)

    visit(spec["root"]["dag"])
    order = list(STEPS)
    return sorted(found, key=lambda name: order.index(find_step(name).component))


def configure(task, settings: ClusterSettings, display_name: str = ""):
    """Applies a step's resources, GPUs, node placement, retries and caching to its task."""
    from kfp import kubernetes

    step = find_step(task.component_spec.name)
    task.set_display_name(display_name or step.display_name)
    cpu_request, cpu_limit, memory_request, memory_limit = settings.resources(step)
    task.set_cpu_request(cpu_request).set_cpu_limit(cpu_limit)
    task.set_memory_request(memory_request).set_memory_limit(memory_limit)
    if settings.gets_gpu(step):
        task.set_accelerator_type(settings.gpu_type).set_accelerator_limit(settings.gpu_count)
        for key, value in settings.node_selector:
            kubernetes.add_node_selector(task, key, value)
        for toleration in settings.tolerations:
            kubernetes.add_toleration(
                task,
                key=toleration.key,
                operator=toleration.operator,
                value=toleration.value or None,
                effect=toleration.effect,
            )
    for pvc, mount_path in settings.volumes:
        kubernetes.mount_pvc(task, pvc_name=pvc, mount_path=mount_path)
    if step.retried and settings.retries:
        task.set_retry(
            settings.retries,
            backoff_duration=settings.backoff,
            backoff_factor=BACKOFF_FACTOR,
            backoff_max_duration=settings.retry_window,
        )
    task.set_caching_options(settings.caching and step.cached)
    return task
