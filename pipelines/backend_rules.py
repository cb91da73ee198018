"""The KFP backend's rules this pipeline depends on: what each is, where it comes from.

Every rule comes from reading the backend's own source (kubeflow/pipelines 2.17.0,
`backend/src/v2`; Argo Workflows v4.0.5, which KFP 2.17.0 runs on), not from kfp.local
or our fake API server, which share none of that code. `docs/kfp-backend.md` cites the
file and line of each rule at length; `backend_contract` checks compiled specs, request
bodies and executor outputs against them.
"""

from dataclasses import dataclass

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
