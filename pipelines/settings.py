"""Compile-time Kubernetes settings of the pipeline: GPUs, nodes, resources, retries, image."""

from dataclasses import dataclass, field

from kftransfer.components.component import DEFAULT_IMAGE

STEPS = ("fingerprint", "split", "extract", "head", "fine_tune", "evaluate", "export")
GPU_STEPS = ("extract", "fine_tune")  # plus "head" with `gpu_on_head`
RETRIED_STEPS = ("extract", "head", "fine_tune")  # the steps a preempted GPU node can kill
# Never cached: their result depends on more than their inputs (what the source holds now,
# the production model now, the export's side effect).
UNCACHED_STEPS = ("fingerprint", "evaluate", "export")

# step -> (cpu request, cpu limit, memory request, memory limit)
DEFAULT_RESOURCES = {
    "fingerprint": ("0.5", "1", "1G", "2G"),
    "split": ("1", "2", "2G", "4G"),
    "extract": ("4", "8", "8G", "16G"),
    "head": ("2", "4", "4G", "8G"),
    "fine_tune": ("4", "8", "16G", "32G"),
    "evaluate": ("2", "4", "8G", "16G"),
    "export": ("2", "4", "8G", "16G"),
}


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration, e.g. `nvidia.com/gpu` `Exists` `NoSchedule`."""

    key: str
    operator: str = "Exists"
    value: str = ""
    effect: str = "NoSchedule"

    @classmethod
    def parse(cls, text: str) -> "Toleration":
        """`key:Effect` (operator Exists) or `key=value:Effect` (operator Equal)."""
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
    """How the steps run on Kubernetes; kfp.local ignores all of it but `extract_parts`.

    Attributes:
        gpu_count: GPUs per GPU step (0: CPU only).
        gpu_type: the accelerator resource name.
        gpu_on_head: give head training a GPU too (usually not worth it).
        node_selector: labels a GPU step's node must have.
        tolerations: taints a GPU step tolerates.
        resources: step -> (cpu request, cpu limit, memory request, memory limit).
        retries: retries of the extract and training steps (preemption).
        backoff: the first retry's delay; doubles up to an hour.
        extract_parts: parallel extraction pods (ParallelFor); 1 keeps a single step.
        volumes: `(PVC name, mount path)` mounted into every step, for sources, caches,
            checkpoints and exports on a shared volume (clusters without object storage).
        caching: KFP step caching of the steps whose outputs follow from their inputs (a
            run can still turn it off); the source fingerprint, evaluation and export
            always run.
        image: the container image of every step; empty for this version's default (its
            `-gpu` variant when steps request GPUs).
    """

    gpu_count: int = 1
    gpu_type: str = "nvidia.com/gpu"
    gpu_on_head: bool = False
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    resources: dict[str, tuple[str, str, str, str]] = field(
        default_factory=lambda: dict(DEFAULT_RESOURCES)
    )
    retries: int = 3
    backoff: str = "60s"
    extract_parts: int = 1
    volumes: tuple[tuple[str, str], ...] = ()
    caching: bool = True
    image: str = ""

    def resolved_image(self) -> str:
        """`image`, or the default image of this version (the GPU variant with GPUs)."""
        if self.image:
            return self.image
        return f"{DEFAULT_IMAGE}-gpu" if self.gpu_count else DEFAULT_IMAGE

    def gpu_steps(self) -> tuple[str, ...]:
        """The steps that request GPUs."""
        if not self.gpu_count:
            return ()
        return (*GPU_STEPS, "head") if self.gpu_on_head else GPU_STEPS


def configure(task, step: str, settings: ClusterSettings):
    """Applies resources, GPUs, node placement, retries and caching to one task."""
    from kfp import kubernetes

    cpu_request, cpu_limit, memory_request, memory_limit = settings.resources[step]
    task.set_cpu_request(cpu_request).set_cpu_limit(cpu_limit)
    task.set_memory_request(memory_request).set_memory_limit(memory_limit)
    if step in settings.gpu_steps():
        task.set_accelerator_type(settings.gpu_type).set_accelerator_limit(settings.gpu_count)
        for key, value in settings.node_selector:
            kubernetes.add_node_selector(task, key, value)
        for toleration in settings.tolerations:
            kubernetes.add_toleration(
                task, key=toleration.key, operator=toleration.operator,
                value=toleration.value or None, effect=toleration.effect,
            )  # fmt: skip
    for pvc, mount_path in settings.volumes:
        kubernetes.mount_pvc(task, pvc_name=pvc, mount_path=mount_path)
    if step in RETRIED_STEPS and settings.retries:
        task.set_retry(settings.retries, backoff_duration=settings.backoff, backoff_factor=2,
                       backoff_max_duration="3600s")  # fmt: skip
    task.set_caching_options(settings.caching and step not in UNCACHED_STEPS)
    return task
