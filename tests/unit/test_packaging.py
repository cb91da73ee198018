"""The container image and deploy scripts, checked statically (no Docker engine here)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kftransfer.components import __version__
from kftransfer.components.component import DEFAULT_IMAGE, IMAGE_REPOSITORY

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
BIN = os.path.dirname(sys.executable)


def read(name: str) -> str:
    return Path(os.path.join(ROOT, name)).read_text()


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", read("constraints.txt"), re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_dockerfile_passes_hadolint():
    result = subprocess.run([os.path.join(BIN, "hadolint"), "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_exactly_the_lock():
    dockerfile = read("Dockerfile")
    assert (
        re.search(r"^ARG TF_VERSION=(\S+)$", dockerfile, re.MULTILINE).group(1)
        == (locked()["tensorflow-cpu"])
    )  # the base image brings the locked TensorFlow
    assert "FROM tensorflow/tensorflow:${TF_VERSION}${VARIANT}" in dockerfile
    installs = re.findall(r"pip install[^\n&]*", dockerfile)
    assert len(installs) == 2
    assert "-c constraints.txt" in installs[0] and "-r requirements.txt" in installs[0]
    assert "--no-deps ." in installs[1]  # then the project, without re-resolving
    assert all("--no-cache-dir" in line for line in installs)
    assert re.search(r"^USER 1000:1000$", dockerfile, re.MULTILINE)  # not root


def test_every_runtime_dependency_is_locked():
    import tomllib

    project = tomllib.loads(read("pyproject.toml"))["project"]
    names = [re.split(r"[<>=\[ ]", dep)[0].lower() for dep in project["dependencies"]]
    missing = [name for name in names if name.replace("_", "-") not in locked()]
    assert not missing, f"add {missing} to constraints.txt (make lock)"
    assert locked()["kfp"] == locked()["kfp-kubernetes"] == "2.17.0"


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
