"""The compiled pipeline spec: steps, GPUs on GPU steps only, placement, retries, caching."""

import dataclasses
import json

import pytest
import yaml
from click.testing import CliRunner

from kftransfer.components.component import DEFAULT_IMAGE
from kftransfer.components.core.config import (
    PIPELINE_CONFIGS,
    EvalConfig,
    FineTuneConfig,
    HeadConfig,
    SplitConfig,
)
from kftransfer.pipelines.backend_contract import required_backend, spec_problems
from kftransfer.pipelines.cli import cli
from kftransfer.pipelines.settings import ClusterSettings, Toleration
from kftransfer.pipelines.steps import STEPS
from kftransfer.pipelines.transfer_learning import compile_pipeline, task_names

GPU_FLAGS = [
    "--gpu-count", "2", "--gpu-type", "nvidia.com/gpu",
    "--node-selector", "cloud.google.com/gke-accelerator=nvidia-tesla-t4",
    "--toleration", "nvidia.com/gpu:NoSchedule", "--toleration", "dedicated=ml:NoExecute",
    "--cpu", "fine_tune=6:12", "--memory", "fine_tune=20G:40G", "--retries", "5",
    "--image", "registry.example.com/kftransfer:test",
]  # fmt: skip
TASKS = task_names()  # from the compiled pipeline
GPU_TASKS = {step.task for step in STEPS.values() if step.gpu}


def compiled(tmp_path, *flags):
    path = tmp_path / "pipeline.yaml"
    result = CliRunner().invoke(cli, ["compile", "-o", str(path), *flags], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == f"wrote {path}\n"
    documents = list(yaml.safe_load_all(path.read_text()))
    return documents[0], documents[1] if len(documents) > 1 else {}  # platform spec, if any


def all_tasks(dag: dict, components: dict) -> dict:
    """Every task of the DAG, recursing into condition and loop sub-DAGs."""
    found = {}
    for name, task in dag["tasks"].items():
        found[name] = task
        sub = components[task["componentRef"]["name"]].get("dag")
        if sub:
            found.update(all_tasks(sub, components))
    return found


def test_every_step_with_gpus_only_on_gpu_steps(tmp_path):
    spec, platform = compiled(tmp_path, *GPU_FLAGS)
    tasks = all_tasks(spec["root"]["dag"], spec["components"])
    assert set(TASKS) <= set(tasks)
    assert GPU_TASKS == {"extract-bottlenecks", "fine-tune"}
    executors = spec["deploymentSpec"]["executors"]
    for executor in TASKS:
        container = executors[f"exec-{executor}"]["container"]
        assert container["image"] == "registry.example.com/kftransfer:test"
        accelerator = container["resources"].get("accelerator")
        if executor in GPU_TASKS:
            assert accelerator["resourceType"] == "nvidia.com/gpu"
            assert accelerator["resourceCount"] == "2"
        else:
            assert accelerator is None, executor
    tune = executors["exec-fine-tune"]["container"]["resources"]
    assert (tune["cpuRequest"], tune["cpuLimit"]) == (6, 12)
    assert (tune["memoryRequest"], tune["memoryLimit"]) == (20, 40)
    split = executors["exec-split-data"]["container"]["resources"]
    assert (split["cpuLimit"], split["memoryLimit"]) == (2, 4)

    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(kubernetes) == {"exec-extract-bottlenecks", "exec-fine-tune"}
    for config in kubernetes.values():
        labels = config["nodeSelector"]["labels"]
        assert labels == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
        assert config["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"},
        ]


def test_retries_on_training_steps_and_caching_where_outputs_follow_inputs(tmp_path):
    spec, _ = compiled(tmp_path, "--retries", "4")
    tasks = all_tasks(spec["root"]["dag"], spec["components"])
    for name in TASKS:
        # the listing, the evaluation against production and the export always run
        cached = name not in ("fingerprint-source", "evaluate-model", "export-model")
        assert tasks[name]["cachingOptions"] == ({"enableCache": True} if cached else {}), name
        retried = name in ("extract-bottlenecks", "train-head", "fine-tune")
        policy = tasks[name].get("retryPolicy")
        if retried:
            assert policy["maxRetryCount"] == 4
            assert policy["backoffDuration"] == "60s" and policy["backoffFactor"] == 2
            # Argo's maxDuration is a window from the first attempt's start: it must
            # cover a preempted multi-hour fine-tune and its retries (docs/kfp-backend.md)
            assert policy["backoffMaxDuration"] == f"{48 * 3600}s"
        else:
            assert policy is None, name


@pytest.mark.parametrize(
    "flags",
    [[], ["--extract-parts", "4"], ["--gpu-count", "0", "--retries", "0"], ["--gpu-on-head"],
     ["--retries", "6", "--backoff", "10m", "--retry-window", "7d"]],
)  # fmt: skip
def test_every_compiled_spec_keeps_the_backend_rules(tmp_path, flags):
    spec, _ = compiled(tmp_path, *flags)
    assert spec_problems(spec) == []
    needed = required_backend(spec)
    assert needed == ("2.14.0" if "--extract-parts" in flags else "2.5.0")


def test_the_extraction_loop_is_unnamed_so_collected_works_before_2_16(tmp_path):
    spec, _ = compiled(tmp_path, "--extract-parts", "3")
    loops = {k: t for k, t in all_tasks(spec["root"]["dag"], spec["components"]).items()
             if "parameterIterator" in t}  # fmt: skip
    assert [(key, task["taskInfo"]["name"]) for key, task in loops.items()] == [
        ("for-loop-2", "for-loop-2")
    ]


def test_retry_settings_that_break_the_backend_rules_are_one_line(tmp_path):
    result = CliRunner().invoke(
        cli, ["compile", "-o", str(tmp_path / "p.yaml"), "--retries", "5", "--backoff", "1h",
              "--retry-window", "12h"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("error: these settings break the KFP backend's rules: ")
    assert "[retry-window] task extract-bottlenecks: the backoffs alone (111600 s)" in result.stderr
    result = CliRunner().invoke(cli, ["compile", "--retry-window", "two days"])
    assert result.exit_code == 2
    assert "--retry-window 'two days': give a duration like 60s, 30m, 48h or 7d" in result.stderr


def test_pod_fields_kubernetes_would_refuse_are_named_at_once(tmp_path):
    # rule pod-fields: the driver copies them into the pod; Kubernetes checks them there
    result = CliRunner().invoke(
        cli, ["compile", "-o", str(tmp_path / "p.yaml"), "--node-selector", "-gpu=t4",
              "--node-selector", "example.com/gpu=t4", "--toleration", "Bad Key:NoSchedule",
              "--toleration", "nvidia.com/gpu=present:NoSchedule", "--pvc", "photos=mnt/photos",
              "--pvc", "photos-2=/mnt/p"],
    )  # fmt: skip
    assert result.exit_code == 2 and not (tmp_path / "p.yaml").exists()
    assert result.stderr.count("\n") == 1
    named = [part.split(":")[0] for part in result.stderr.removeprefix("error: ").split("; ")]
    assert named == ["--node-selector -gpu=t4", "--toleration Bad Key", "--pvc photos=mnt/photos"]


def test_cpu_only_and_gpu_on_head(tmp_path):
    spec, platform = compiled(tmp_path, "--gpu-count", "0", "--node-selector", "a=b")
    assert platform == {}  # node placement applies to GPU steps only
    executors = spec["deploymentSpec"]["executors"]
    assert not any("accelerator" in e["container"]["resources"] for e in executors.values())
    assert (
        spec["deploymentSpec"]["executors"]["exec-split-data"]["container"]["image"]
        == DEFAULT_IMAGE
    )
    spec, _ = compiled(tmp_path, "--gpu-on-head")
    head = spec["deploymentSpec"]["executors"]["exec-train-head"]["container"]["resources"]
    assert head["accelerator"]["resourceCount"] == "1"


def test_parallel_extraction_fans_out_and_merges(tmp_path):
    spec, _ = compiled(tmp_path, "--extract-parts", "4")
    tasks = all_tasks(spec["root"]["dag"], spec["components"])
    loop = tasks["for-loop-2"]
    assert loop["parameterIterator"]["items"]["raw"] == "[0, 1, 2, 3]"
    assert loop["iteratorPolicy"]["parallelismLimit"] == 4
    assert "merge-features" in tasks and "extract-bottlenecks" in tasks
    inputs = tasks["merge-features"]["inputs"]["artifacts"]["parts"]
    assert inputs["taskOutputArtifact"]["producerTask"] == "for-loop-2"


def test_backbones_loop_over_extraction_and_head_then_one_fine_tuning(tmp_path):
    spec, _ = compiled(tmp_path, "--backbones", "mobilenet_v2,resnet50", "--backbones",
                       "keras_hub:gs://b/dinov2_small")  # fmt: skip
    assert spec_problems(spec) == [] and required_backend(spec) == "2.14.0"  # Collected
    tasks = all_tasks(spec["root"]["dag"], spec["components"])
    [(key, loop)] = [(k, t) for k, t in tasks.items() if "parameterIterator" in t]
    assert loop["taskInfo"]["name"] == key  # unnamed, so Collected works before 2.16
    items = loop["parameterIterator"]["items"]["raw"]
    assert json.loads(items) == ["mobilenet_v2", "resnet50", "keras_hub:gs://b/dinov2_small"]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 3
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"extract-bottlenecks", "train-head"}
    backbone = body["extract-bottlenecks"]["inputs"]["parameters"]["backbone"]
    assert backbone["componentInputParameter"].startswith("pipelinechannel--loop-item-param")
    assert body["extract-bottlenecks"]["inputs"]["parameters"]["part_count"] == {
        "runtimeValue": {"constant": 1}
    }
    choose = tasks["choose-backbone"]["inputs"]["artifacts"]
    for name in ("heads", "candidates"):
        assert choose[name]["taskOutputArtifact"]["producerTask"] == key
    assert tasks["choose-backbone"]["cachingOptions"].get("enableCache") is True
    for name in ("features", "head"):  # fine-tuning and evaluation read the chosen ones
        for task in ("fine-tune", "evaluate-model"):
            source = tasks[task]["inputs"]["artifacts"][name]["taskOutputArtifact"]
            assert source == {"producerTask": "choose-backbone", "outputArtifactKey": name}
    assert "merge-features" not in tasks


def test_the_export_copies_the_tflite_model_the_evaluation_judged(tmp_path):
    """--tflite and --max-tflite-drop go to the evaluation; the export takes its flatbuffer."""
    spec, _ = compiled(tmp_path)
    tasks = all_tasks(spec["root"]["dag"], spec["components"])
    evaluate, export = tasks["evaluate-model"]["inputs"], tasks["export-model"]["inputs"]
    assert {"tflite", "max_tflite_drop"} <= set(evaluate["parameters"])
    assert not {"tflite", "max_tflite_drop"} & set(export.get("parameters", {}))
    evaluation = spec["components"][tasks["evaluate-model"]["componentRef"]["name"]]
    output = evaluation["outputDefinitions"]["artifacts"]["tflite_model"]
    assert output["artifactType"]["schemaTitle"] == "system.Model"
    # the export runs inside the "blessed" condition: the artifact arrives as a DAG input
    source = export["artifacts"]["tflite_model"]["componentInputArtifact"]
    assert source == "pipelinechannel--evaluate-model-tflite_model"


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--backbones", "vgg16"], "--backbones vgg16: give two or more different backbones"),
     (["--backbones", "vgg16,vgg16"], "give two or more different backbones"),
     (["--backbones", "vgg16,resnet9000"], "--backbones: unknown backbone 'resnet9000'"),
     (["--backbones", "vgg16,resnet50", "--extract-parts", "2"],
      "--backbones with --extract-parts: each backbone is already extracted by its own pod")],
)  # fmt: skip
def test_bad_backbone_lists_are_one_line(tmp_path, flags, message):
    result = CliRunner().invoke(cli, ["compile", "-o", str(tmp_path / "p.yaml"), *flags])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert result.stderr.count("\n") == 1 and not (tmp_path / "p.yaml").exists()


def test_parameter_defaults_come_from_the_dataclasses(tmp_path):
    spec = compile_pipeline(
        str(tmp_path / "p.yaml"), ClusterSettings(tolerations=(Toleration("x"),))
    )
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["val_fraction"]["defaultValue"] == SplitConfig.val_fraction
    assert params["head_epochs"]["defaultValue"] == HeadConfig.head_epochs
    assert (
        params["fine_tune_learning_rate"]["defaultValue"] == FineTuneConfig.fine_tune_learning_rate
    )
    assert params["augmentation"]["defaultValue"] == FineTuneConfig.augmentation
    assert params["min_accuracy"]["defaultValue"] == EvalConfig.min_accuracy
    assert "defaultValue" not in params["source"]


@pytest.mark.parametrize("config_cls", PIPELINE_CONFIGS)
def test_every_hyper_parameter_is_a_pipeline_parameter_with_its_help(tmp_path, config_cls):
    params = compile_pipeline(str(tmp_path / "p.yaml"))["root"]["inputDefinitions"]["parameters"]
    for field in dataclasses.fields(config_cls):
        assert field.name in params, f"{field.name} is not a pipeline parameter"
        assert params[field.name]["defaultValue"] == field.default, field.name
        assert params[field.name]["description"] == field.metadata["help"], field.name


def test_bad_cluster_flags_are_usage_errors(tmp_path):
    result = CliRunner().invoke(
        cli, ["compile", "-o", str(tmp_path / "p.yaml"), "--toleration", "gpu"]
    )
    assert result.exit_code == 2 and "--toleration 'gpu': use KEY:EFFECT" in result.output
    result = CliRunner().invoke(cli, ["compile", "--cpu", "train=4"])
    assert result.exit_code == 2 and "--cpu train=...: no step 'train'" in result.output
    result = CliRunner().invoke(cli, ["compile", "--node-selector", "novalue"])
    assert result.exit_code == 2 and "--node-selector 'novalue': use KEY=VALUE" in result.output


def test_volumes_are_mounted_into_every_step(tmp_path):
    _, platform = compiled(tmp_path, "--gpu-count", "0", "--pvc", "kftransfer-data=/mnt/kftransfer")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {f"exec-{name}" for name in TASKS} <= set(executors)
    for config in executors.values():
        [mount] = config["pvcMount"]
        assert (mount["constant"], mount["mountPath"]) == ("kftransfer-data", "/mnt/kftransfer")


def test_a_packages_pipeline_root_is_only_the_uis_suggestion_and_compile_says_so(tmp_path):
    path = tmp_path / "pipeline.yaml"
    args = ["compile", "-o", str(path), "--pipeline-root", "gs://bucket/kfp"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    spec = yaml.safe_load_all(path.read_text()).__next__()
    assert spec["defaultPipelineRoot"] == "gs://bucket/kfp"  # NewRunV2.tsx pre-fills it
    # rule pipeline-root: the backend reads runtime_config, then the kfp-launcher ConfigMap
    assert "the backend never reads a package's root" in result.stderr
    assert "kfp-launcher ConfigMap (deploy/kfp-launcher.yaml)" in result.stderr
    spec, _ = compiled(tmp_path)
    assert "defaultPipelineRoot" not in spec


@pytest.mark.parametrize(
    "key,value,valid",
    [
        ("cloud.google.com/gke-accelerator", "nvidia-tesla-t4", True),
        ("gpu", "", True),  # an empty value is a label value
        ("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-40GB", True),
        ("Example.com/gpu", "t4", False),  # the prefix is a lower-case DNS name
        ("a/b/c", "t4", False),
        ("gpu", "t4\n", False),
        ("gpu", "x" * 64, False),  # 63 at most
        ("gpu_", "t4", False),
    ],
)
def test_labels_follow_kubernetes_syntax(key, value, valid):
    from kftransfer.pipelines.kubernetes_names import label_key_problem, label_value_problem

    assert not (label_key_problem(key) or label_value_problem(value)) == valid


def test_the_fingerprint_step_hashes_the_backbone_and_weights_files_too(tmp_path):
    """A weights file overwritten in place must change the split's input, or every cached
    step computed with the old weights is reused (before: only the source was hashed)."""
    spec, _ = compiled(tmp_path)
    inputs = spec["root"]["dag"]["tasks"]["fingerprint-source"]["inputs"]["parameters"]
    assert {name: value["componentInputParameter"] for name, value in inputs.items()} == {
        "source": "source", "backbones": "backbone", "weights": "weights"
    }  # fmt: skip
    spec, _ = compiled(tmp_path, "--backbones", "mobilenet_v2,gs://b/m.keras")
    inputs = spec["root"]["dag"]["tasks"]["fingerprint-source"]["inputs"]["parameters"]
    assert inputs["backbones"] == {"runtimeValue": {"constant": "mobilenet_v2,gs://b/m.keras"}}
