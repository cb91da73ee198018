"""Compile-time Kubernetes settings of the pipeline's pods (`steps.STEPS` names the steps).

`ClusterSettings` holds what shapes the pods; its fields' help texts are the
`compile`/`submit`/`schedule` options' help (`options.cluster_options`).
"""

import re
from dataclasses import dataclass, field
from typing import Any

from kftransfer.components.component import DEFAULT_IMAGE, GPU_SUFFIX
from kftransfer.components.core.errors import ParameterError
from kftransfer.pipelines.kubernetes_names import cluster_problems
from kftransfer.pipelines.steps import Step, find_step, step_names

DURATION = re.compile(r"[0-9]+[smhdw]$")  # what kfp.dsl's set_retry accepts
BACKOFF_FACTOR = 2  # an integer: Argo parses the factor as an int (docs/kfp-backend.md)
CPU_QUANTITY = re.compile(r"([0-9]*[.])?[0-9]+m?$")  # what kfp.dsl accepts
MEMORY_QUANTITY = re.compile(r"[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")


def _setting(default: Any, help: str, **cli: Any) -> Any:  # noqa: A002 - click's keyword
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration, e.g. `nvidia.com/gpu` `Exists` `NoSchedule`."""

    key: str
    operator: str = "Exists"
    value: str = ""
    effect: str = "NoSchedule"

    @classmethod
    def parse(cls, text: str) -> "Toleration":
        """`key:Effect` (operator Exists) or `key=value:Effect` (operator Equal).

        Raises:
            ValueError: any other text.
        """
        key, _, effect = text.partition(":")
        key, equals, value = key.partition("=")
        if not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(
                f"--toleration {text!r}: use KEY:EFFECT or KEY=VALUE:EFFECT, EFFECT one of "
                "NoSchedule, PreferNoSchedule, NoExecute"
            )
        return cls(key, "Equal" if equals else "Exists", value, effect)


@dataclass(frozen=True)
class ClusterSettings:
    """How the steps run on Kubernetes, and the DAG's shape (parallel extraction, backbones).

    kfp.local ignores all of it but `extract_parts` and `backbones`.
    """

    gpu_count: int = _setting(1, "GPUs per GPU step (extract_bottlenecks, fine_tune); 0: CPU only.")
    gpu_type: str = _setting("nvidia.com/gpu", "Accelerator resource name.")
    gpu_on_head: bool = _setting(False, "Give head training a GPU too (rarely worth it).")
    node_selector: tuple[tuple[str, str], ...] = _setting(
        (),
        "Node label of GPU steps, e.g. cloud.google.com/gke-accelerator=nvidia-tesla-t4 "
        "(repeatable).",
        metavar="KEY=VALUE",
    )
    tolerations: tuple[Toleration, ...] = _setting(
        (),
        "Taint GPU steps tolerate, e.g. nvidia.com/gpu:NoSchedule (repeatable).",
        flag="--toleration",
        metavar="KEY[=VALUE]:EFFECT",
    )
    cpu: tuple[tuple[str, str], ...] = _setting(
        (),
        "CPU request[:limit] of a step, by component name or alias, e.g. fine_tune=8:16 "
        "or extract=4:8 (repeatable).",
        metavar="STEP=REQUEST[:LIMIT]",
    )
    memory: tuple[tuple[str, str], ...] = _setting(
        (),
        "Memory request[:limit] of a step, e.g. fine_tune=32G:64G (repeatable).",
        metavar="STEP=REQUEST[:LIMIT]",
    )
    retries: int = _setting(3, "Retries of the extract and training steps (preemption).")
    backoff: str = _setting("60s", "Delay before the first retry; it doubles for each next one.")
    retry_window: str = _setting(
        "48h",
        "Retries happen only within this time from a step's first start (Argo's "
        "backoff.maxDuration), and a retry still running at its end is stopped: cover the "
        "longest extraction or fine-tuning with its retries, e.g. 48h or 7d.",
    )
    extract_parts: int = _setting(1, "Parallel extraction pods (ParallelFor, then a merge step).")
    backbones: tuple[str, ...] = _setting(
        (),
        "Backbones to compare, comma-separated (e.g. mobilenet_v2,resnet50,keras_hub:dinov2_small):"
        " each is extracted and gets a head, in parallel; the best head on validation is "
        "fine-tuned. Replaces --backbone.",
        metavar="A,B,...",
    )
    volumes: tuple[tuple[str, str], ...] = _setting(
        (),
        "PersistentVolumeClaim mounted into every step, e.g. models=/mnt/models, for "
        "sources, caches and exports on a shared volume (repeatable).",
        flag="--pvc",
        metavar="NAME=MOUNT_PATH",
    )
    caching: bool = _setting(
        True, "KFP step caching of the steps whose outputs follow from their inputs.", cli=False
    )
    image: str = _setting(
        "",
        f"Container image of the steps (env KFTRANSFER_IMAGE); default {DEFAULT_IMAGE}.",
        envvar="KFTRANSFER_IMAGE",
    )
    gpu_image: str = _setting(
        "",
        f"Image of the steps that get GPUs (env KFTRANSFER_GPU_IMAGE); default --image if "
        f"given, else {DEFAULT_IMAGE}{GPU_SUFFIX}.",
        envvar="KFTRANSFER_GPU_IMAGE",
    )

    def __post_init__(self):
        """Checks step names, Kubernetes quantities, labels and names.

        Raises:
            ParameterError: naming every bad value at once.
        """
        problems = []
        for option, pairs, pattern in (
            ("--cpu", self.cpu, CPU_QUANTITY),
            ("--memory", self.memory, MEMORY_QUANTITY),
        ):
            for step, value in pairs:
                try:
                    find_step(step)
                except KeyError:
                    problems.append(f"{option} {step}=...: no step {step!r} ({step_names()})")
                quantities = value.split(":")
                if len(quantities) > 2 or not all(pattern.match(q) for q in quantities):
                    problems.append(
                        f"{option} {step}={value}: give REQUEST[:LIMIT] like "
                        f"{'4:8' if option == '--cpu' else '8G:16G'}"
                    )
        for name in ("gpu_count", "retries"):
            if getattr(self, name) < 0:
                problems.append(f"--{name.replace('_', '-')} must be >= 0")
        for name in ("backoff", "retry_window"):
            if not DURATION.match(getattr(self, name)):
                problems.append(
                    f"--{name.replace('_', '-')} {getattr(self, name)!r}: give a duration like "
                    "60s, 30m, 48h or 7d"
                )
        if self.extract_parts < 1:
            problems.append("--extract-parts must be >= 1")
        problems += _backbone_problems(self)
        problems += cluster_problems(
            self.node_selector, self.tolerations, self.gpu_type, self.volumes
        )
        if problems:
            raise ParameterError(problems)

    def resources(self, step: Step) -> tuple[str, str, str, str]:
        """(cpu request, cpu limit, memory request, memory limit) of a step."""
        values = [*step.cpu, *step.memory]
        for offset, overrides in ((0, self.cpu), (2, self.memory)):
            for name, value in overrides:
                if find_step(name) == step:
                    request, _, limit = value.partition(":")
                    values[offset : offset + 2] = [request, limit or request]
        return tuple(values)

    def gets_gpu(self, step: Step) -> bool:
        """Whether the step requests GPUs."""
        wanted = step.gpu or (self.gpu_on_head and step.component == "train_head")
        return bool(self.gpu_count) and wanted

    def image_for(self, step: Step) -> str:
        """The step's image: the GPU image for steps with GPUs, else the (CPU) image."""
        if self.gets_gpu(step):
            return self.gpu_image or self.image or DEFAULT_IMAGE + GPU_SUFFIX
        return self.image or DEFAULT_IMAGE


def _backbone_problems(settings: "ClusterSettings") -> list[str]:
    """Two or more known, distinct backbones, and no nested extraction loop."""
    from kftransfer.components.core.registry import REGISTRY, is_known

    names = settings.backbones
    if not names:
        return []
    found = [
        f"--backbones: unknown backbone {name!r} (use {', '.join(sorted(REGISTRY))}, a .keras "
        "model URI or keras_hub:PRESET)"
        for name in names
        if not is_known(name)
    ]
    if len(names) < 2 or len(set(names)) != len(names):
        found.append(f"--backbones {','.join(names)}: give two or more different backbones")
    if settings.extract_parts > 1:
        found.append(
            "--backbones with --extract-parts: each backbone is already extracted by its own "
            "pod, in parallel; drop --extract-parts"
        )
    return found
