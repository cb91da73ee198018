"""Checks of what we hand the KFP backend against its rules (`backend_rules.RULES`).

Every rule comes from reading the backend's own source, not from kfp.local or our fake
API server, which share none of that code (`backend_rules`, `docs/kfp-backend.md`). The
tests run these checks on compiled specs, on the bodies `submit`/`schedule` send, and on
every executor output of a whole local run, and `submit`/`schedule`/`doctor` run
`spec_problems` before anything reaches a server.
"""

import base64
import glob
import json
import math
import os
import re

from google.protobuf import struct_pb2

from kftransfer.pipelines.backend_rules import (
    BASE_FLOOR,
    COLLECTED_ARTIFACTS_FLOOR,
    MAX_CONCURRENCY,
    MLMD_VALUE_BYTES,
    SWF_PREFIX_CHARS,
)
from kftransfer.pipelines.steps import find_step


def parse_version(tag: str) -> tuple[int, ...] | None:
    """`2.17.0` (or `v2.17.0`, `2.17.0-rc.1`) -> (2, 17, 0); None when it names no release."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", tag or "")
    return tuple(int(part) for part in match.groups()) if match else None


def _tasks(spec: dict) -> dict[str, tuple[dict, dict]]:
    """Every task of every DAG: its key -> (task spec, component spec)."""
    found, components = {}, spec["components"]

    def visit(dag: dict) -> None:
        for name, task in dag.get("tasks", {}).items():
            component = components[task["componentRef"]["name"]]
            found[name] = (task, component)
            visit(component.get("dag", {}))

    visit(spec["root"]["dag"])
    return found


def _seconds(duration: str) -> int:
    return int(duration.rstrip("s"))


def _step_of(task_key: str):
    try:
        return find_step(re.sub(r"-\d+$", "", task_key))
    except KeyError:
        return None


def spec_problems(spec: dict) -> list[str]:
    """The rules a compiled pipeline spec breaks, one line each (`[rule-id] ...`)."""
    problems = []
    for key, (task, component) in _tasks(spec).items():
        step = _step_of(key)
        if step and not step.cached and task.get("cachingOptions", {}).get("enableCache"):
            problems.append(f"[uncached-steps] task {key} may be served from the cache")
        policy = task.get("retryPolicy")
        if policy and "executorLabel" not in component:
            problems.append(f"[retry-on-containers] task {key} is not a container task")
        if policy:
            problems += _retry_problems(key, policy)
        if "parameterIterator" in task or "artifactIterator" in task:
            if task.get("taskInfo", {}).get("name") != key:
                problems.append(f"[unnamed-loop] loop {key} is named {task['taskInfo']['name']!r}")
    for name, parameter in spec["root"].get("inputDefinitions", {}).get("parameters", {}).items():
        if parameter.get("isOptional") and parameter.get("defaultValue") is None:
            problems.append(f"[root-defaults] parameter {name} has no default")
    return problems


def _retry_problems(key: str, policy: dict) -> list[str]:
    problems = []
    factor = float(policy.get("backoffFactor", 2))
    if not factor.is_integer():
        problems.append(f"[retry-factor-integer] task {key} backoffFactor {factor}")
    delay, waits = _seconds(policy.get("backoffDuration", "0s")), 0
    for attempt in range(int(policy.get("maxRetryCount", 0))):
        waits += delay * int(factor) ** attempt
    window = _seconds(policy.get("backoffMaxDuration", "3600s"))
    if waits >= window:
        problems.append(
            f"[retry-window] task {key}: the backoffs alone ({waits} s) exceed the retry "
            f"window ({window} s), so the last retries can never run"
        )
    return problems


def required_backend(spec: dict) -> str:
    """The oldest backend release that runs this spec."""
    for task, _ in _tasks(spec).values():
        for artifact in task.get("inputs", {}).get("artifacts", {}).values():
            producer = artifact.get("taskOutputArtifact", {}).get("producerTask", "")
            if producer.startswith("for-loop-"):  # an artifact collected from a loop
                return COLLECTED_ARTIFACTS_FLOOR
    return BASE_FLOOR


def request_problems(body: dict, pipeline_root: str) -> list[str]:
    """The rules a `POST /runs` or `/recurringruns` body breaks.

    Args:
        body: the JSON body sent.
        pipeline_root: the root the user asked for ('' for the namespace's default).
    """
    problems = spec_problems(body["pipeline_spec"].get("pipeline_spec", body["pipeline_spec"]))
    sent = (body.get("runtime_config") or {}).get("pipeline_root") or ""
    if sent != pipeline_root:
        problems.append(
            f"[pipeline-root] the request asks for root {sent!r}, not {pipeline_root!r}"
        )
    if "trigger" in body:  # a recurring run
        problems += _recurring_problems(body)
    return problems


def _recurring_problems(body: dict) -> list[str]:
    problems = []
    name = body.get("display_name") or ""
    if scheduled_workflow_prefix(name).startswith("-"):
        problems.append(f"[schedule-name] {name!r} names the ScheduledWorkflow starting with '-'")
    concurrency = int(body.get("max_concurrency") or 0)
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        problems.append(
            f"[max-concurrency] max_concurrency {concurrency} is not 1-{MAX_CONCURRENCY}"
        )
    return problems


def scheduled_workflow_prefix(display_name: str) -> str:
    """The generateName KFP gives the ScheduledWorkflow of a recurring run (`schedule-name`).

    As `toSWFCRDResourceGeneratedName` (template.go:323-339 at 2.17.0): lower case, every
    character but a-z, 0-9 and '-' dropped, `job-` when none is left, the first 25 kept.
    Kubernetes appends 5 random characters.
    """
    kept = re.sub("[^a-z0-9-]+", "", display_name.lower())
    return (kept or "job-")[:SWF_PREFIX_CHARS]


def executor_output_problems(run_folder: str) -> list[str]:
    """The rules the executor outputs of a local run break.

    kfp.local provisions `<task folder>/<output name>` for each output artifact, as the
    launcher provisions a URI under the run's root on a cluster.
    """
    problems = []
    pattern = os.path.join(run_folder, "**", "executor_output.json")
    for path in sorted(glob.glob(pattern, recursive=True)):
        task_folder = os.path.dirname(path)
        with open(path, encoding="utf-8") as file:
            output = json.load(file)
        for name, artifacts in output.get("artifacts", {}).items():
            for artifact in artifacts.get("artifacts", []):
                provisioned = os.path.join(task_folder, name)
                if not os.path.exists(provisioned):
                    problems.append(
                        f"[outputs-written] {os.path.basename(task_folder)}.{name} was not written"
                    )
                if artifact.get("uri") != provisioned:
                    problems.append(
                        f"[artifact-uri] {os.path.basename(task_folder)}.{name} was moved to "
                        f"{artifact.get('uri')}"
                    )
                problems += _metadata_problems(name, artifact.get("metadata", {}))
    return problems


def mlmd_stored_bytes(value) -> int:
    """The bytes of MLMD's string_value for a metadata value (0 for a number or bool).

    As the launcher converts it (a dict wrapped as {"struct": ...}, a list as {"list": ...})
    and MLMD serializes a struct ('mlmd-struct::' + base64 of the Struct).
    """
    if isinstance(value, str):
        return len(value.encode())
    if not isinstance(value, dict | list):
        return 0
    wrapped = struct_pb2.Struct()
    wrapped.update({"struct" if isinstance(value, dict) else "list": value})
    return len("mlmd-struct::") + len(base64.b64encode(wrapped.SerializeToString()))


def _finite(value) -> bool:
    """False when `value` is, or holds at any depth, a NaN or infinite number."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


def _metadata_problems(name: str, metadata: dict) -> list[str]:
    problems = []
    none = [key for key, value in metadata.items() if value is None]
    if none:
        problems.append(f"[metadata-values] {name} metadata {none} is None")
    not_finite = [key for key, value in metadata.items() if not _finite(value)]
    if not_finite:
        problems.append(f"[metadata-values] {name} metadata {not_finite} holds NaN or infinity")
    for key, value in metadata.items():
        stored = mlmd_stored_bytes(value)
        if stored > MLMD_VALUE_BYTES:
            problems.append(
                f"[metadata-size] {name} metadata {key!r} is {stored:,} bytes in MLMD, "
                f"over MySQL's {MLMD_VALUE_BYTES:,}"
            )
    return problems
