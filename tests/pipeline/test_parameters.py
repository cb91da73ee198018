"""One declaration per parameter: a config field reaches its component, with its help."""

import dataclasses
import importlib
import json

import pytest
from kfp import local

from devtools.imagegen import write_class_folders
from kftransfer.components.component import kftransfer_component
from kftransfer.components.core import config
from kftransfer.components.core.config import (
    EvalConfig,
    ExtractConfig,
    FineTuneConfig,
    HeadConfig,
    SplitConfig,
)
from kftransfer.pipelines.runs import prepare_run
from kftransfer.pipelines.transfer_learning import compile_pipeline

STEP_CONFIGS = {
    "split-data": SplitConfig,
    "extract-bottlenecks": ExtractConfig,
    "train-head": HeadConfig,
    "fine-tune": FineTuneConfig,
    "evaluate-model": EvalConfig,
}


def tasks_and_components(spec: dict) -> tuple[dict, dict]:
    """Every task (recursing into condition sub-DAGs) and the component each one runs."""
    tasks, components = {}, spec["components"]

    def visit(dag):
        for name, task in dag["tasks"].items():
            tasks[name] = task
            visit(components[task["componentRef"]["name"]].get("dag", {"tasks": {}}))

    visit(spec["root"]["dag"])
    return tasks, {name: components[task["componentRef"]["name"]] for name, task in tasks.items()}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return compile_pipeline(str(tmp_path_factory.mktemp("spec") / "pipeline.yaml"))


@pytest.mark.parametrize("task", sorted(STEP_CONFIGS))
def test_every_config_field_reaches_its_step_with_its_help(spec, task):
    tasks, components = tasks_and_components(spec)
    inputs = components[task]["inputDefinitions"]["parameters"]
    passed = tasks[task]["inputs"]["parameters"]
    for field in dataclasses.fields(STEP_CONFIGS[task]):
        assert inputs[field.name]["description"] == field.metadata["help"], field.name
        assert inputs[field.name]["defaultValue"] == field.default, field.name
        # a condition sub-DAG passes the pipeline's parameter on under its own name
        source = passed[field.name]["componentInputParameter"]
        assert source == field.name or source.endswith(f"-{field.name}"), field.name


def test_no_description_says_see_the_config_class(spec):
    text = json.dumps(spec)
    assert "see `" not in text.lower() and "Config`" not in text
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert all(p.get("description") for p in parameters.values())


def test_fields_shared_by_several_steps_agree():
    seen: dict[str, dataclasses.Field] = {}
    for config_cls in config.PIPELINE_CONFIGS:
        for field in dataclasses.fields(config_cls):
            first = seen.setdefault(field.name, field)
            assert (first.default, first.metadata) == (field.default, field.metadata), field.name


@pytest.fixture
def head_with_a_new_field(monkeypatch):
    """HeadConfig with one throw-away field, as a developer would add it: one field."""
    extended = dataclasses.make_dataclass(
        "HeadConfig",
        [("head_warmup", int, dataclasses.field(default=3, metadata={"help": "Warm-up epochs."}))],
        bases=(HeadConfig,),
        frozen=True,
    )
    configs = tuple(extended if c is HeadConfig else c for c in config.PIPELINE_CONFIGS)
    monkeypatch.setattr(config, "HeadConfig", extended)
    monkeypatch.setattr(config, "PIPELINE_CONFIGS", configs)
    modules = [
        importlib.import_module("kftransfer.components.train_head"),
        importlib.import_module("kftransfer.pipelines.transfer_learning"),
    ]
    for module in modules:
        importlib.reload(module)
    yield modules[1]
    monkeypatch.undo()
    for module in modules:
        importlib.reload(module)


def test_a_new_field_reaches_the_pipeline_and_its_component(head_with_a_new_field, tmp_path):
    spec = head_with_a_new_field.compile_pipeline(str(tmp_path / "p.yaml"))
    parameter = spec["root"]["inputDefinitions"]["parameters"]["head_warmup"]
    assert parameter == {
        "defaultValue": 3.0, "description": "Warm-up epochs.", "isOptional": True,
        "parameterType": "NUMBER_INTEGER",
    }  # fmt: skip
    tasks, components = tasks_and_components(spec)
    assert tasks["train-head"]["inputs"]["parameters"]["head_warmup"] == {
        "componentInputParameter": "head_warmup"
    }
    assert (
        components["train-head"]["inputDefinitions"]["parameters"]["head_warmup"]["description"]
        == "Warm-up epochs."
    )
    source = "\n".join(
        spec["deploymentSpec"]["executors"]["exec-train-head"]["container"]["command"]
    )
    assert "head_warmup: int = 3," in source  # the shipped function takes it


@dataclasses.dataclass(frozen=True)
class ToyConfig(config.Config):
    """Stands for a step's config in the run below."""

    toy_rate: float = dataclasses.field(default=0.5, metadata={"help": "A rate."})
    toy_name: str = dataclasses.field(default="x", metadata={"help": "A name."})


@kftransfer_component(ToyConfig)
def toy_step(label: str) -> str:
    """Returns every parameter it received, as JSON.

    Args:
        label: a parameter of the step itself.
    """
    import json

    return json.dumps({name: value for name, value in locals().items() if name != "json"})


def test_the_shipped_step_receives_config_fields_by_name(tmp_path):
    local.init(local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    received = json.loads(toy_step(label="a", toy_rate=0.25).output)
    assert received == {"label": "a", "toy_rate": 0.25, "toy_name": "x"}
    inputs = toy_step.component_spec.inputs
    assert (inputs["toy_rate"].description, inputs["label"].description) == (
        "A rate.",
        "a parameter of the step itself.",
    )
    assert ToyConfig.from_params(received) == ToyConfig(toy_rate=0.25)


def test_a_local_run_passes_each_parameter_with_its_declared_type(tmp_path):
    """KFP refuses 0 for a float parameter when the pipeline is called: the run coerces first."""
    write_class_folders(str(tmp_path / "data"), {"a": 10, "b": 10})
    arguments = {"source": str(tmp_path / "data"), "fine_tune_label_smoothing": 0,
                 "head_epochs": 3.0, "augmentation": "flip"}  # fmt: skip
    declared = prepare_run(arguments, str(tmp_path / "runs"))
    assert declared == {**arguments, "fine_tune_label_smoothing": 0.0, "head_epochs": 3}
    assert type(declared["fine_tune_label_smoothing"]) is float
    assert type(declared["head_epochs"]) is int
    assert not (tmp_path / "runs").exists()
