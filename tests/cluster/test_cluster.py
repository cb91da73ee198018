"""On a real KFP cluster: submit the demo pipeline, wait for success, find the export.

Skipped unless KFTRANSFER_KFP_HOST is set; see deploy/README.md ("The cluster test").
"""

import os
import time

import pytest

from kftransfer.pipelines.kfp_server import Job, connect, submit
from kftransfer.pipelines.settings import ClusterSettings

HOST = os.environ.get("KFTRANSFER_KFP_HOST", "")
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not HOST, reason="needs a KFP cluster: set KFTRANSFER_KFP_HOST"),
]
DEMO_SOURCE = "/opt/kftransfer/pipelines/demo_data/fashion-mnist"  # inside the image
TIMEOUT = int(os.environ.get("KFTRANSFER_TEST_TIMEOUT", "3600"))


def test_demo_pipeline_runs_and_exports_on_the_cluster():
    started = time.time()
    base = os.environ.get("KFTRANSFER_TEST_EXPORT_URI", "/mnt/kftransfer/models")
    # A fresh destination per run: a seeded rerun can train the very same weights, which
    # the blessing rightly refuses to export twice.
    export = f"{base.rstrip('/')}/cluster-test-{int(started)}"
    pvc = os.environ.get("KFTRANSFER_TEST_PVC", "kftransfer-data")
    volumes = () if export.startswith("gs://") else ((pvc, "/mnt/kftransfer"),)
    settings = ClusterSettings(
        gpu_count=0, volumes=volumes, image=os.environ.get("KFTRANSFER_IMAGE", "")
    )
    arguments = {
        "source": DEMO_SOURCE, "backbone": "mobilenet", "weights": "none", "image_size": 96,
        "head_epochs": 5, "fine_tune_epochs": 1, "export_uri": export,
    }  # fmt: skip
    namespace = os.environ.get("KFTRANSFER_KFP_NAMESPACE", "kubeflow")
    server = connect(HOST, namespace, None)
    job = Job(
        client=server.client,
        healthz=server.healthz,
        host=HOST,
        arguments=arguments,
        settings=settings,
        experiment="kftransfer-cluster-test",
        namespace=namespace,
        pipeline_root=os.environ.get("KFTRANSFER_TEST_PIPELINE_ROOT", ""),
        caching=False,
    )
    run_id = submit(job, run_name=f"cluster-test-{int(started)}")
    run = server.client.wait_for_run_completion(run_id, timeout=TIMEOUT)
    assert run.state == "SUCCEEDED", f"run {run_id} ended {run.state}"
    tasks = {task.display_name: task.state for task in run.run_details.task_details or []}
    assert tasks.get("export") == "SUCCEEDED", tasks
    if export.startswith("gs://"):
        from kftransfer.components.core import storage, versions

        version = versions.latest_version(export)
        assert version and version[:14] >= time.strftime("%Y%m%d%H%M%S", time.gmtime(started))
        assert storage.exists(storage.join(export, version, "saved_model.pb"))
