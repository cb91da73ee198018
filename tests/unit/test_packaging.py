"""The container image and deploy scripts, checked statically (no Docker engine here)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kftransfer.components import __version__
from kftransfer.components.component import DEFAULT_IMAGE, GPU_SUFFIX, IMAGE_REPOSITORY

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
BIN = os.path.dirname(sys.executable)


def read(name: str) -> str:
    return Path(os.path.join(ROOT, name)).read_text()


def locked(name: str = "constraints.txt") -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", read(name), re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_dockerfile_passes_hadolint():
    result = subprocess.run([os.path.join(BIN, "hadolint"), "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_exactly_the_lock():
    dockerfile = read("Dockerfile")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", dockerfile, re.MULTILINE)  # the lock's
    installs = re.findall(r"pip install[^\n&]*", dockerfile)
    assert len(installs) == 3
    assert "-c constraints.txt -c constraints-gpu.txt -r requirements.txt" in installs[0]
    assert "--no-deps -r requirements-keras-hub.txt" in installs[1]  # KerasHub, not tensorflow
    assert "--no-deps ." in installs[2]  # then the project, without re-resolving
    assert all("--no-cache-dir" in line for line in installs)
    # requirements.txt = the runtime dependencies + the variant's extra (cpu or gpu)
    assert "p['optional-dependencies'][sys.argv[1]]" in dockerfile and '"${VARIANT}"' in dockerfile
    assert re.search(r"^USER 1000:0$", dockerfile, re.MULTILINE)  # not root
    assert (
        "HOME=/home/kftransfer" in dockerfile and "KERAS_HOME=/home/kftransfer/.keras" in dockerfile
    )


def test_the_gpu_lock_adds_tensorflow_with_cuda_to_the_cpu_lock():
    import tomllib

    gpu, cpu = locked("constraints-gpu.txt"), locked()
    extras = tomllib.loads(read("pyproject.toml"))["project"]["optional-dependencies"]
    assert extras["gpu"] == [f"tensorflow[and-cuda]=={cpu['tensorflow-cpu']}"]
    assert gpu["tensorflow"] == cpu["tensorflow-cpu"]
    assert int(gpu["nvidia-cudnn-cu12"].split(".")[0]) >= 9  # TF 2.18+ needs cuDNN 9
    assert not set(gpu) & set(cpu), "constraints-gpu.txt only adds packages (make lock-gpu)"


def test_the_image_workflow_publishes_the_images_compiled_pipelines_name():
    import yaml

    workflow = yaml.safe_load(read(".github/workflows/images.yml"))
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads `on` as True
    assert workflow["permissions"]["packages"] == "write"
    job = workflow["jobs"]["build"]
    variants = {(m["variant"], m["suffix"]) for m in job["strategy"]["matrix"]["include"]}
    assert variants == {("cpu", ""), ("gpu", GPU_SUFFIX)}
    [build] = [step for step in job["steps"] if step.get("uses", "").startswith("docker/build")]
    assert build["with"]["tags"].startswith(f"{IMAGE_REPOSITORY}:")
    assert "VARIANT=${{ matrix.variant }}" in build["with"]["build-args"]
    check = next(step["run"] for step in job["steps"] if step.get("id") == "version")
    assert "components/__init__.py" in check and '!= "v${version}"' in check


def test_every_runtime_dependency_is_locked():
    import tomllib

    project = tomllib.loads(read("pyproject.toml"))["project"]
    names = [re.split(r"[<>=\[ ]", dep)[0].lower() for dep in project["dependencies"]]
    missing = [name for name in names if name.replace("_", "-") not in locked()]
    assert not missing, f"add {missing} to constraints.txt (make lock)"
    assert locked()["kfp"] == locked()["kfp-kubernetes"] == "2.17.0"


# Declared by the KerasHub set, deliberately not installed (requirements-keras-hub.txt):
# text models' tokenizers (tensorflow-text would pull in the full tensorflow) and hf://.
SKIPPED_FOR_KERAS_HUB = {"tensorflow-text", "sentencepiece", "huggingface-hub"}


def test_the_keras_hub_set_brings_everything_but_the_text_stack():
    from importlib import metadata

    from packaging.requirements import Requirement

    hub = locked("requirements-keras-hub.txt")
    assert hub["keras-hub"] == "0.32.0"
    assert not set(hub) & set(locked()), "the KerasHub set only adds packages to the lock"
    assert "--no-deps -r requirements-keras-hub.txt" in read("Makefile")
    missing = set()
    for name, version in hub.items():
        assert metadata.version(name) == version, f"{name}: make venv installs the pinned one"
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue  # an extra, or another platform's
            dependency = requirement.name.lower().replace("_", "-")
            if dependency not in hub and dependency not in locked():
                missing.add(dependency)
    assert missing == SKIPPED_FOR_KERAS_HUB


def test_image_tag_is_the_package_version():
    assert DEFAULT_IMAGE == f"{IMAGE_REPOSITORY}:{__version__}"
    makefile = read("Makefile")
    assert "VERSION  := $(shell sed -n 's/^__version__" in makefile
    assert f"IMAGE    ?= {IMAGE_REPOSITORY}" in makefile
    assert (
        re.search(r"^ARG VERSION=(\S+)$", read("Dockerfile"), re.MULTILINE).group(1) == __version__
    )


@pytest.mark.parametrize(
    "script",
    sorted(f"deploy/{n}" for n in os.listdir(os.path.join(ROOT, "deploy")) if n.endswith(".sh"))
    + [".ci/run"],
)
def test_shell_scripts_pass_shellcheck(script):
    result = subprocess.run([os.path.join(BIN, "shellcheck"), script], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert os.access(os.path.join(ROOT, script), os.X_OK)


def test_dockerignore_keeps_the_build_context_small():
    ignored = read(".dockerignore").split()
    assert {".git", ".venv", "tests", "bench", "devtools"} <= set(ignored)


def test_deploy_manifests_share_a_writable_volume_and_the_buckets_root():
    import yaml

    pvc, init = yaml.safe_load_all(read("deploy/pvc.yaml"))
    assert pvc["kind"] == "PersistentVolumeClaim" and init["kind"] == "Job"
    command = " ".join(init["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "chown 1000:0 /data" in command  # the steps' uid: KFP sets no fsGroup
    rwx, rwx_init = yaml.safe_load_all(read("deploy/pvc-rwx.yaml"))
    assert rwx_init["kind"] == "Job"
    assert rwx["spec"]["accessModes"] == ["ReadWriteMany"]  # parallel pods on several nodes
    launcher = yaml.safe_load(read("deploy/kfp-launcher.yaml"))
    assert launcher["metadata"]["name"] == "kfp-launcher"  # backend/src/v2/config/env.go:36
    assert launcher["data"]["defaultPipelineRoot"].startswith("gs://")


def test_gke_setup_gives_the_ui_bucket_access_and_enough_gpus_per_node():
    script = read("deploy/gke.sh")
    assert "for ksa in pipeline-runner ml-pipeline-ui; do" in script
    assert "count=${GPUS_PER_NODE}" in script and "--gpu-count ${GPUS_PER_NODE}" in script
    assert "kfp-launcher.yaml" in script
