"""`kftransfer doctor`: what a run on this server will do, checked before it goes live.

Each check gives one line: the server's version against the pipeline's floor, whether the
steps' images are published, the pipeline root runs will get, the caching and retries the
compiled spec carries, and the backend rules (`backend_contract`) it passes.
"""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from kftransfer.pipelines.backend_contract import (
    RULES,
    parse_version,
    required_backend,
    spec_problems,
)
from kftransfer.pipelines.container_registry import image_exists
from kftransfer.pipelines.settings import BACKOFF_FACTOR, STEPS, ClusterSettings, find_step
from kftransfer.pipelines.transfer_learning import compile_pipeline, task_names

KFP_DEFAULT_ROOT = "minio://mlpipeline/v2/artifacts"  # backend/src/v2/config/env.go:38


@dataclass(frozen=True)
class Finding:
    """One line of the report; `ok` is False for a problem, None when it cannot tell."""

    topic: str
    text: str
    ok: bool | None = True


def diagnose(client, host: str, namespace: str, pipeline_root: str, settings: ClusterSettings):
    """Every finding for a run of this pipeline with these settings on `host`."""
    from kftransfer.pipelines.kfp_server import server_info

    with tempfile.TemporaryDirectory() as tmp:
        spec = compile_pipeline(os.path.join(tmp, "pipeline.yaml"), settings)
    return [
        _version(server_info(client), host, required_backend(spec)),
        *_images(settings),
        _pipeline_root(pipeline_root, namespace),
        _caching(settings),
        _retries(settings),
        _contract(spec),
    ]


def _version(info: dict, host: str, needed: str) -> Finding:
    tag = info.get("tag_name", "")
    mode = "multi-user" if info.get("multi_user") else "single-user"
    version = parse_version(tag)
    text = f"{host}: KFP {tag or '?'} (commit {info.get('commit_sha', '?')[:8]}, {mode}); "
    text += f"this pipeline needs {needed} or newer"
    if version is None:
        return Finding("server", text + ": cannot tell the version", None)
    return Finding("server", text, version >= parse_version(needed))


def _images(settings: ClusterSettings) -> list[Finding]:
    steps_by_image: dict[str, list[str]] = {}
    for task in task_names(settings):
        step = find_step(task)
        steps_by_image.setdefault(settings.image_for(step), []).append(step.component)
    findings = []
    for image, steps in steps_by_image.items():
        exists, why = image_exists(image)
        findings.append(Finding("image", f"{image} ({', '.join(steps)}): {why}", exists))
    return findings


def _pipeline_root(pipeline_root: str, namespace: str) -> Finding:
    if pipeline_root:
        return Finding("pipeline root", f"{pipeline_root} (--pipeline-root, sent with each run)")
    configured = _launcher_root(namespace)
    if configured:
        return Finding(
            "pipeline root", f"{configured} (ConfigMap kfp-launcher in namespace {namespace})"
        )
    return Finding(
        "pipeline root",
        f"not given: runs get the kfp-launcher ConfigMap's defaultPipelineRoot in namespace "
        f"{namespace} if it has one (could not read it here), else {KFP_DEFAULT_ROOT}; pass "
        "--pipeline-root gs://bucket/kfp to choose",
        None,
    )


def _launcher_root(namespace: str) -> str:
    """The namespace's kfp-launcher defaultPipelineRoot, read with kubectl ('' if it can't)."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return ""
    command = [kubectl, "-n", namespace, "get", "configmap", "kfp-launcher", "-o",
               "jsonpath={.data.defaultPipelineRoot}", "--request-timeout=10s"]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _caching(settings: ClusterSettings) -> Finding:
    cached = [s.component for s in STEPS.values() if s.cached]
    never = [s.component for s in STEPS.values() if not s.cached]
    state = f"on for {', '.join(cached)}" if settings.caching else "off (--no-cache)"
    return Finding("caching", f"{state}; never for {', '.join(never)}")


def _retries(settings: ClusterSettings) -> Finding:
    retried = [s.component for s in STEPS.values() if s.retried]
    if not settings.retries:
        return Finding("retries", "none (--retries 0)")
    from kfp.dsl.structures import convert_duration_to_seconds

    first = convert_duration_to_seconds(settings.backoff)
    waits = ", ".join(f"{first * BACKOFF_FACTOR**i} s" for i in range(settings.retries))
    return Finding(
        "retries",
        f"{settings.retries} of {', '.join(retried)} after {waits}, within "
        f"{settings.retry_window} of each step's first start; a pod lost with its node ends "
        "in Argo's Error state and is not retried (docs/kfp-backend.md)",
    )


def _contract(spec: dict) -> Finding:
    problems = spec_problems(spec)
    if problems:
        return Finding("backend rules", "; ".join(problems), False)
    return Finding("backend rules", f"the compiled spec keeps the {len(RULES)} rules it is "
                   "checked against (docs/kfp-backend.md)")  # fmt: skip
