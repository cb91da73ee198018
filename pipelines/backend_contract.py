"""The KFP backend's rules this pipeline depends on, as checks of what we hand it.

Every rule comes from reading the backend's own source (kubeflow/pipelines 2.17.0,
`backend/src/v2`; Argo Workflows v4.0.5, which KFP 2.17.0 runs on), not from kfp.local
or our fake API server, which share none of that code. `docs/kfp-backend.md` cites the
file and line of each rule; the tests run these checks on compiled specs, on the bodies
`submit`/`schedule` send, and on every executor output of a whole local run, and
`submit`/`schedule`/`doctor` run `spec_problems` before anything reaches a server.
"""

import base64
import glob
import json
import math
import os
import re
from dataclasses import dataclass

from google.protobuf import struct_pb2

from kftransfer.pipelines.settings import find_step

# The oldest backend whose driver reads every field this pipeline compiles (resources,
# accelerator, node selector, tolerations, PVC mounts, retries) and whose healthz names
# its version: 2.5.0 (driver.go:755-799, apiserver/main.go:278-280 at that tag).
BASE_FLOOR = "2.5.0"
COLLECTED_ARTIFACTS_FLOOR = "2.14.0"  # dsl.Collected of artifacts (#11725, resolve.go:751)
NAMED_LOOP_FLOOR = "2.16.0"  # a named ParallelFor + Collected (#13239, fixed by #12808)
MLMD_VALUE_BYTES = 2**24 - 1  # MySQL MEDIUMTEXT, MLMD's string_value column
MAX_CONCURRENCY = 10  # a recurring run's max_concurrency is 1..10 (api_converter.go:2084)
SWF_PREFIX_CHARS = 25  # a ScheduledWorkflow's generateName is cut to 25 (template.go:338)


@dataclass(frozen=True)
class Rule:
    """One rule of the backend: what it is, where it comes from, since which version."""

    id: str
    rule: str
    source: str
    since: str


RULES = {
    r.id: r
    for r in (
        Rule(
            "artifact-uri",
            "An output artifact's URI stays the one KFP provisioned: the launcher uploads to "
            "the URI the component leaves, and refuses one outside <root>/<pipeline>/<run>.",
            "backend/src/v2/component/launcher_v2.go:804-823, objectstore/config.go:97-104",
            "2.0.0",
        ),
        Rule(
            "metadata-values",
            "Output artifact metadata values are never None (MLMD refuses the step), nor NaN "
            "or infinite at any depth (the launcher parses the executor output as strict "
            "JSON, which the SDK's json.dumps breaks with a bare NaN, and fails the step).",
            "backend/src/v2/metadata/converter.go:138-171, "
            "component/launcher_v2.go:1208-1236; protobuf-go v1.36.11 (KFP 2.17.0's go.mod) "
            "internal/encoding/json/decode.go:160-213; kfp SDK kfp/dsl/executor.py:347",
            "2.0.0",
        ),
        Rule(
            "metadata-size",
            "Each output artifact metadata value fits in one MLMD row on MySQL: a string as "
            "it is, a dict or list as 'mlmd-struct::' + base64 of its serialized Struct, in "
            "a MEDIUMTEXT column of 16 MiB; a longer one fails the step's publish (MySQL 8.4 "
            "is strict by default).",
            "backend/src/v2/metadata/converter.go:110-171; google/ml-metadata v1.14.0 (the "
            "2.17.0 manifests' store server) query_config_executor.cc:369-397, "
            "util/struct_utils.cc:30-39, util/metadata_source_query_config.cc:2976-2987",
            "2.0.0",
        ),
        Rule(
            "outputs-written",
            "A step writes every output artifact, even one it has nothing for: the launcher "
            "only warns about a missing one and records it, and the next step's download "
            "of it yields no file, so a step reading it fails on a path that is not there.",
            "backend/src/v2/component/launcher_v2.go:824-833, "
            "objectstore/object_store.go:111-115, 176-205",
            "2.0.0",
        ),
        Rule(
            "uncached-steps",
            "The source listing, the evaluation and the export are never cached, in every "
            "DAG of the spec (a cache hit is keyed by parameters and input artifact ids only).",
            "backend/src/v2/cacheutils/cache.go:173-229, driver/cache.go:120",
            "2.0.0",
        ),
        Rule(
            "no-caching-override",
            "A run request carries the compiled per-task caching: the SDK client's "
            "enable_caching rewrites every root task's, so it is never passed.",
            "kfp SDK 2.17.0 kfp/client/client.py:963-971, 1771-1786",
            "2.0.0",
        ),
        Rule(
            "retry-on-containers",
            "retryPolicy sits on container tasks only (the compiler ignores it elsewhere).",
            "backend/src/v2/compiler/argocompiler/container.go:366-375, 582-588",
            "2.0.0",
        ),
        Rule(
            "retry-factor-integer",
            "backoffFactor is a whole number: Argo parses it as an int and otherwise "
            "marks the retry node Error at the first failure.",
            "argo-workflows v4.0.5 util/intstr/parametrizable.go:12-22, "
            "workflow/controller/operator.go:1055-1058",
            "2.0.0",
        ),
        Rule(
            "retry-window",
            "backoffMaxDuration is a window from the first attempt's start: the backoffs of "
            "every retry must fit in it, and a retry running at its end is killed.",
            "argo-workflows v4.0.5 workflow/controller/operator.go:1033-1098, "
            "workflow/executor/executor.go:1318-1340",
            "2.0.0",
        ),
        Rule(
            "collected-artifacts",
            "dsl.Collected of a ParallelFor's artifacts needs backend 2.14.0.",
            "backend/src/v2/driver/resolve.go:751-757 (kubeflow/pipelines#11725)",
            COLLECTED_ARTIFACTS_FLOOR,
        ),
        Rule(
            "unnamed-loop",
            "A ParallelFor whose outputs are Collected is not named: a named loop breaks "
            "Collected on backends before 2.16.0.",
            "backend/src/v2/driver/dag.go:97-105, 368-442 (kubeflow/pipelines#13239, #12808)",
            NAMED_LOOP_FLOOR,
        ),
        Rule(
            "root-defaults",
            "Every optional pipeline parameter has a real default (a null one fails the "
            "tasks that consume it).",
            "backend/src/v2/compiler/argocompiler/argo.go:96-107, driver/resolve.go:399-403",
            "2.0.0",
        ),
        Rule(
            "pipeline-root",
            "The backend never reads a package's defaultPipelineRoot: a run's root is its "
            "runtime_config.pipeline_root, else the namespace's kfp-launcher ConfigMap "
            "defaultPipelineRoot, else minio://mlpipeline/v2/artifacts.",
            "backend/src/v2/driver/root_dag.go:97-117, config/env.go:36-44, 85-92",
            "2.0.0",
        ),
        Rule(
            "one-schedule",
            "The backend keeps any number of recurring runs of one name (no unique key; "
            "each ScheduledWorkflow gets a generated name) and lists them in pages, so "
            "`schedule create` reads every page and refuses a second schedule of one name "
            "or export destination (`--replace` swaps it).",
            "backend/src/apiserver/model/job.go:88-91, template/v2_template.go:71, "
            "resource/resource_manager.go:1283-1400, server/job_server.go:362-384",
            "2.0.0",
        ),
        Rule(
            "cron-time-zone",
            "A recurring run's cron is read in the ScheduledWorkflow controller's "
            "CRON_SCHEDULE_TIMEZONE, which the manifests set from pipeline-install-config's "
            "cronScheduleTimezone, UTC: a recurring run has no time zone of its own.",
            "backend/src/crd/controller/scheduledworkflow/util/const.go:25, 32-38, "
            "main.go:217-221; manifests/kustomize/base/installs/generic/"
            "pipeline-install-config.yaml:54-60",
            "2.0.0",
        ),
        Rule(
            "schedule-name",
            "A recurring run's ScheduledWorkflow takes its generateName from the display "
            "name: lower case, every character but a-z, 0-9 and '-' dropped, 'job-' when none "
            "is left, cut to 25. Kubernetes refuses a custom resource name that does not "
            "start with a letter or digit, so `Ежедневно-retrain` (-> '-retrain') fails at "
            "creation, on the cluster only.",
            "backend/src/apiserver/server/api_converter.go:2041, 2066, "
            "template/template.go:323-339, v2_template.go:50-71, "
            "resource/resource_manager.go:1382-1387; Kubernetes apiextensions-apiserver "
            "customResourceValidator.Validate (ValidateObjectMetaAccessor, NameIsDNSSubdomain)",
            "2.0.0",
        ),
        Rule(
            "max-concurrency",
            "A recurring run's max_concurrency is 1 to 10; the API refuses any other.",
            "backend/src/apiserver/server/api_converter.go:2084-2086",
            "2.0.0",
        ),
        Rule(
            "pod-fields",
            "The driver copies the GPU steps' node selector, tolerations, accelerator resource "
            "name and PVC mounts into the pod unchecked; Kubernetes validates them when the "
            "pod is created (labels, label names and values, an extended resource name), or "
            "never (a pod naming a claim that cannot exist stays Pending), so they are "
            "checked with Kubernetes' syntax before compiling.",
            "backend/src/v2/driver/driver.go:415-445, k8s.go:156-160, 195-221, 223-297; "
            "Kubernetes ValidatePodSpec, ValidateTolerations, IsQualifiedName, "
            "IsValidLabelValue, IsDNS1123Subdomain",
            "2.0.0",
        ),
        Rule(
            "healthz-version",
            "GET /apis/v2beta1/healthz answers tag_name (the SDK's get_kfp_healthz drops it).",
            "backend/src/apiserver/main.go:465-512; kfp_server_api "
            "v2beta1_get_healthz_response.py:35-43",
            BASE_FLOOR,
        ),
        Rule(
            "schedule-delete-orphans",
            "Deleting a recurring run asks for propagation_policy=ORPHAN: its "
            "ScheduledWorkflow owns the Workflows of its runs, and without a policy "
            "Kubernetes deletes a run in progress with it. Backends before 2.16.0 ignore it.",
            "backend/src/apiserver/resource/resource_manager.go:92-97, 1458-1474, "
            "server/job_server.go:410-414, common/util/workflow.go:724-733, "
            "scheduledworkflow/util/scheduled_workflow.go:188",
            "2.16.0",
        ),
        Rule(
            "api-access",
            "kfp.Client with a host and no token sends no credentials, follows redirects and "
            "reads any body as its answer, and sets no timeout: a notebook's mounted token is "
            "given, healthz is asked first without redirects, and each request gets 30 s.",
            "kfp/client/client.py:277-299, 204-205, 401-432; kfp_server_api/rest.py:142-149; "
            "backend/src/apiserver/main.go:465-512",
            "2.0.0",
        ),
    )
}


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
        with open(path) as file:
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
