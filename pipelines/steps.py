"""The pipeline's steps, each named once, with their default resources and policies.

`STEPS` is keyed by each step's component name (`split_data`, ...; KFP names the task
after it, `split-data`); a step's short alias (`split`) is accepted wherever a step is
named on the command line.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One step of the DAG.

    Attributes:
        component: the component's function name; the task is named after it.
        alias: a short name for `--cpu`/`--memory`.
        display_name: what the KFP UI shows.
        cpu: default (request, limit) in cores.
        memory: default (request, limit).
        gpu: requests GPUs (when `gpu_count` > 0).
        retried: retried after a failure (the steps a preempted GPU node can kill).
        cached: its outputs follow from its inputs, so KFP may reuse them. Not so for the
            source listing (what the source holds now), the evaluation (what is in
            production now) and the export (a side effect).
    """

    component: str
    alias: str
    display_name: str
    cpu: tuple[str, str]
    memory: tuple[str, str]
    gpu: bool = False
    retried: bool = False
    cached: bool = True

    @property
    def task(self) -> str:
        """The task's name in the compiled pipeline and in a local run's folder."""
        return self.component.replace("_", "-")


STEPS: dict[str, Step] = {
    step.component: step
    for step in (
        Step(
            "fingerprint_source",
            "fingerprint",
            "fingerprint source",
            ("0.5", "1"),
            ("1G", "2G"),
            cached=False,
        ),
        Step("split_data", "split", "split data", ("1", "2"), ("2G", "4G")),
        Step(
            "extract_bottlenecks",
            "extract",
            "extract bottlenecks",
            ("4", "8"),
            ("8G", "16G"),
            gpu=True,
            retried=True,
        ),
        Step("merge_features", "merge", "merge features", ("1", "2"), ("2G", "4G")),
        Step("train_head", "head", "train head", ("2", "4"), ("4G", "8G"), retried=True),
        Step("choose_backbone", "choose", "choose backbone", ("1", "2"), ("2G", "4G")),
        Step(
            "fine_tune",
            "fine_tune",
            "fine-tune",
            ("4", "8"),
            ("16G", "32G"),
            gpu=True,
            retried=True,
        ),
        Step("evaluate_model", "evaluate", "evaluate", ("2", "4"), ("8G", "16G"), cached=False),
        Step("export_model", "export", "export", ("2", "4"), ("8G", "16G"), cached=False),
    )
}


def find_step(name: str) -> Step:
    """The step with this component name, task name or alias.

    Raises:
        KeyError: no such step.
    """
    for step in STEPS.values():
        if name in (step.component, step.task, step.alias):
            return step
    raise KeyError(name)


def step_names() -> str:
    """The accepted step names, for messages and help."""
    return ", ".join(
        f"{s.component} ({s.alias})" if s.alias != s.component else s.component
        for s in STEPS.values()
    )
