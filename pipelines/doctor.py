"""`kftransfer doctor`: what a run on this server will do, checked before it goes live.

Each check gives one line: the server's version against the pipeline's floor, whether the
steps' images are published, the pipeline root runs will get, the caching and retries the
compiled spec carries (and which stopped pods the cluster's Argo retries), and the backend
rules (`backend_contract`) it passes.
"""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from kftransfer.pipelines.backend_contract import (
    parse_version,
    required_backend,
    spec_problems,
)
from kftransfer.pipelines.backend_rules import RULES
from kftransfer.pipelines.container_registry import image_exists
from kftransfer.pipelines.settings import BACKOFF_FACTOR, ClusterSettings
from kftransfer.pipelines.steps import STEPS, find_step
from kftransfer.pipelines.transfer_learning import compile_pipeline, task_names

KFP_DEFAULT_ROOT = "minio://mlpipeline/v2/artifacts"  # backend/src/v2/config/env.go:38
ARGO_NAMESPACE = "kubeflow"  # where KFP's manifests install Argo's workflow controller
ARGO_CONFIGMAP = "workflow-controller-configmap"


@dataclass(frozen=True)
class Finding:
    """One line of the report; `ok` is False for a problem, None when it cannot tell."""

    topic: str
    text: str
    ok: bool | None = True


def diagnose(info: dict, host: str, namespace: str, pipeline_root: str, settings: ClusterSettings):
    """Every finding for a run of this pipeline with these settings on `host`.

    `info` is the server's healthz answer (`kfp_server.Server.healthz`).
    """
    with tempfile.TemporaryDirectory() as tmp:
        spec = compile_pipeline(os.path.join(tmp, "pipeline.yaml"), settings)
    return [
        _version(info, host, required_backend(spec)),
        *_images(settings),
        _pipeline_root(pipeline_root, namespace),
        _caching(settings),
        _retries(settings, parse_version(info.get("tag_name", ""))),
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
    """The namespace's kfp-launcher defaultPipelineRoot ('' if it can't be read)."""
    return _configmap_value(namespace, "kfp-launcher", "defaultPipelineRoot") or ""


def _configmap_value(namespace: str, configmap: str, key: str) -> str | None:
    """A ConfigMap's value, read with kubectl ('' when it lacks the key, None if unreadable)."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return None
    command = [kubectl, "-n", namespace, "get", "configmap", configmap, "-o",
               f"jsonpath={{.data.{key}}}", "--request-timeout=10s"]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _caching(settings: ClusterSettings) -> Finding:
    cached = [s.component for s in STEPS.values() if s.cached]
    never = [s.component for s in STEPS.values() if not s.cached]
    state = f"on for {', '.join(cached)}" if settings.caching else "off (--no-cache)"
    return Finding("caching", f"{state}; never for {', '.join(never)}")


def _retries(settings: ClusterSettings, version: tuple[int, ...] | None) -> Finding:
    retried = [s.component for s in STEPS.values() if s.retried]
    if not settings.retries:
        return Finding("retries", "none (--retries 0)")
    from kfp.dsl.structures import convert_duration_to_seconds

    first = convert_duration_to_seconds(settings.backoff)
    waits = ", ".join(f"{first * BACKOFF_FACTOR**i} s" for i in range(settings.retries))
    text = (
        f"{settings.retries} of {', '.join(retried)} after {waits}, within "
        f"{settings.retry_window} of each step's first start; "
    )
    policy, known = _retry_policy(version)
    where = (
        f"Argo's templateDefaults retryPolicy {policy}, ConfigMap {ARGO_CONFIGMAP} in "
        f"namespace {ARGO_NAMESPACE}"
        if known
        else f"could not read ConfigMap {ARGO_CONFIGMAP} here; {policy} is the default of "
        f"a KFP {'2.17+' if policy == 'OnError' else '<2.17'} install"
    )
    said, ok = RETRIED_BY_POLICY.get(policy, (f"retryPolicy {policy}: see Argo's docs", None))
    return Finding("retries", f"{text}{said} ({where}; docs/kfp-backend.md)", ok if known else None)


# What Argo retries under each retryPolicy (operator.go:1100-1125), and whether a
# preemption is covered: graceful node shutdown or an eviction ends a pod Failed
# (inferFailedReason, operator.go:1709-1712), a node lost with its pod in Error (1289).
BOTH = "set retryPolicy: Always there to retry both"
RETRIED_BY_POLICY = {
    "Always": ("preempted, evicted and lost pods are all retried", True),
    "OnFailure": (
        f"preempted or evicted pods are retried, pods lost with a node not: {BOTH}",
        True,
    ),
    "OnError": (f"pods lost with a node are retried, preempted or evicted ones NOT: {BOTH}", False),
    "OnTransientError": (f"only transient Kubernetes errors are retried: {BOTH}", False),
}


def _retry_policy(version: tuple[int, ...] | None) -> tuple[str, bool]:
    """The retryPolicy Argo gives the retried steps, and whether it was read (not guessed).

    KFP cannot set one (`retry-policy` in docs/kfp-backend.md): Argo merges its
    `workflowDefaults.spec.templateDefaults.retryStrategy` into each step's strategy, and
    without a `retryPolicy` there applies OnFailure. KFP 2.17's manifests set OnError.
    """
    import yaml

    text = _configmap_value(ARGO_NAMESPACE, ARGO_CONFIGMAP, "workflowDefaults")
    try:
        defaults = yaml.safe_load(text) or {} if text is not None else None
    except yaml.YAMLError:
        defaults = None
    if not isinstance(defaults, dict):
        return ("OnError" if version and version >= (2, 17, 0) else "OnFailure"), False
    template_defaults = (defaults.get("spec") or {}).get("templateDefaults") or {}
    strategy = template_defaults.get("retryStrategy") or {}
    return str(strategy.get("retryPolicy") or "OnFailure"), True


def _contract(spec: dict) -> Finding:
    problems = spec_problems(spec)
    if problems:
        return Finding("backend rules", "; ".join(problems), False)
    return Finding("backend rules", f"the compiled spec keeps the {len(RULES)} rules it is "
                   "checked against (docs/kfp-backend.md)")  # fmt: skip
