"""`kftransfer doctor` against the fake KFP API and a fake OCI registry on 127.0.0.1."""

import json
from http.server import BaseHTTPRequestHandler

import pytest
from click.testing import CliRunner

from devtools.local_server import LocalServer
from kftransfer.pipelines.cli import cli
from kftransfer.pipelines.container_registry import DOCKER_HUB, ImageRef, image_exists
from tests.pipeline.fake_kfp import FakeKfp


class FakeRegistry(LocalServer):
    """A registry that wants an anonymous bearer token, as ghcr.io and Docker Hub do."""

    def __init__(self, tags: set[str]):
        self.tags = tags
        super().__init__(self._handler())

    def _handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/token"):
                    return self._send(200, json.dumps({"token": "t0k"}).encode())
                return self.do_HEAD()

            def do_HEAD(self):
                if self.headers.get("Authorization") != "Bearer t0k":
                    challenge = (
                        f'Bearer realm="http://{registry.address}/token",'
                        'service="fake",scope="repository:kftransfer/kftransfer:pull"'
                    )
                    return self._send(401, headers=[("WWW-Authenticate", challenge)])
                tag = self.path.rsplit("/", 1)[-1]
                self._send(200 if tag in registry.tags else 404)

            def log_message(self, *args):
                pass

        return Handler


def test_image_references_follow_dockers_defaults():
    assert ImageRef.parse("ghcr.io/kftransfer/kftransfer:0.1.0") == ImageRef(
        "ghcr.io", "kftransfer/kftransfer", "0.1.0"
    )
    assert ImageRef.parse("python:3.11") == ImageRef(DOCKER_HUB, "library/python", "3.11")
    assert ImageRef.parse("localhost:5000/x") == ImageRef("localhost:5000", "x", "latest")
    assert ImageRef.parse("localhost:5000/x").base_url == "http://localhost:5000/v2"


def test_image_exists_takes_an_anonymous_token_then_asks_for_the_tag():
    with FakeRegistry({"0.1.0"}) as registry:
        assert image_exists(f"{registry.address}/kftransfer/kftransfer:0.1.0") == (
            True,
            "published",
        )
        found, why = image_exists(f"{registry.address}/kftransfer/kftransfer:9.9.9")
        assert found is False and "has no tag 9.9.9 of kftransfer/kftransfer" in why
    found, why = image_exists(f"{registry.address}/kftransfer/kftransfer:0.1.0")  # gone now
    assert found is None and why.startswith(f"cannot reach {registry.address}")


@pytest.mark.parametrize("version,published,code", [("2.17.0", True, 0), ("2.4.0", True, 1),
                                                    ("2.17.0", False, 1)])  # fmt: skip
def test_doctor_reports_every_check_and_fails_on_a_problem(version, published, code):
    with FakeKfp(version=version) as kfp, FakeRegistry({"0.1.0", "0.1.0-gpu"}) as registry:
        image = f"{registry.address}/kftransfer/kftransfer:{'0.1.0' if published else '0.0.9'}"
        result = CliRunner().invoke(
            cli, ["doctor", "--host", kfp.host, "--image", image, "--gpu-image", image + "-gpu",
                  "--pipeline-root", "gs://bucket/kfp", "--retries", "2"],
        )  # fmt: skip
    assert result.exit_code == code, result.output
    lines = result.stdout.splitlines()
    topics = [line[5:].split(":")[0] for line in lines]
    assert topics == ["server", "image", "image", "pipeline root", "caching", "retries",
                      "backend rules"]  # fmt: skip
    server = lines[0]
    assert server.startswith("ok  " if version == "2.17.0" else "FAIL")
    assert f"KFP {version} (commit 0123abcd, single-user); this pipeline needs 2.5.0" in server
    assert lines[1].startswith("ok  " if published else "FAIL")
    assert "(fingerprint_source, split_data, train_head, evaluate_model, export_model)" in lines[1]
    assert "-gpu (extract_bottlenecks, fine_tune)" in lines[2]
    assert lines[3] == "ok   pipeline root: gs://bucket/kfp (--pipeline-root, sent with each run)"
    assert "never for fingerprint_source, evaluate_model, export_model" in lines[4]
    assert (
        "2 of extract_bottlenecks, train_head, fine_tune after 60 s, 120 s, within 48h" in lines[5]
    )
    assert lines[6].startswith("ok   backend rules: the compiled spec keeps the 21 rules")


def test_doctor_without_a_pipeline_root_says_where_runs_will_write():
    with FakeKfp() as kfp:
        result = CliRunner().invoke(cli, ["doctor", "--host", kfp.host, "--image", "x.invalid/a:b"])
    root = [line for line in result.stdout.splitlines() if "pipeline root" in line][0]
    assert root.startswith("??   pipeline root: not given: runs get the kfp-launcher ConfigMap")
    assert "else minio://mlpipeline/v2/artifacts; pass --pipeline-root" in root


def test_what_the_server_says_is_printed_one_line_each_escaped():
    with FakeKfp(version="2.17.0\n\x1b[2J") as kfp:
        result = CliRunner().invoke(cli, ["doctor", "--host", kfp.host, "--no-cache"])
    lines = result.stdout.splitlines()
    assert [line[5:].split(":")[0] for line in lines][0] == "server"
    assert "KFP 2.17.0\\n\\x1b[2J (commit" in lines[0]
    assert all(line[:4] in ("ok  ", "FAIL", "??  ") for line in lines)


# The workflowDefaults of KFP 2.17.0's manifests (third-party/argo/base/
# workflow-controller-configmap-patch.yaml), whose templateDefaults Argo merges into the
# retry strategy of each retried step.
KFP_2_17_DEFAULTS = """spec:
  ttlStrategy:
    secondsAfterCompletion: 3600
  templateDefaults:
    retryStrategy:
      limit: '2'
      retryPolicy: OnError
"""


def fake_kubectl(folder, workflow_defaults: str | None):
    """A `kubectl` that answers only the Argo ConfigMap's workflowDefaults (None: not found)."""
    (folder / "defaults.yaml").write_text(workflow_defaults or "")
    found = workflow_defaults is not None
    (folder / "kubectl").write_text(
        "#!/bin/sh\n"
        'case "$*" in *"configmap workflow-controller-configmap"*'
        '"jsonpath={.data.workflowDefaults}"*) ;; *) exit 1;; esac\n'
        + (f"cat {folder}/defaults.yaml\n" if found else "echo 'NotFound' >&2; exit 1\n")
    )
    (folder / "kubectl").chmod(0o755)


@pytest.mark.parametrize("defaults,version,line", [
    (KFP_2_17_DEFAULTS, "2.17.0", "FAIL retries: 3 of extract_bottlenecks, train_head, fine_tune "
     "after 60 s, 120 s, 240 s, within 48h of each step's first start; pods lost with a node are "
     "retried, preempted or evicted ones NOT: set retryPolicy: Always there to retry both "
     "(Argo's templateDefaults retryPolicy OnError, ConfigMap workflow-controller-configmap in "
     "namespace kubeflow; docs/kfp-backend.md)"),
    (KFP_2_17_DEFAULTS.replace("OnError", "Always"), "2.17.0",
     "ok   retries: 3 of extract_bottlenecks, train_head, fine_tune after 60 s, 120 s, 240 s, "
     "within 48h of each step's first start; preempted, evicted and lost pods are all retried "
     "(Argo's templateDefaults retryPolicy Always, ConfigMap"),
    ("", "2.17.0", "ok   retries: 3 of extract_bottlenecks, train_head, fine_tune after 60 s, "
     "120 s, 240 s, within 48h of each step's first start; preempted or evicted pods are "
     "retried, pods lost with a node not"),
    (None, "2.17.0", "??   retries: 3 of extract_bottlenecks, train_head, fine_tune after 60 s, "
     "120 s, 240 s, within 48h of each step's first start; pods lost with a node are retried, "
     "preempted or evicted ones NOT: set retryPolicy: Always there to retry both (could not "
     "read ConfigMap workflow-controller-configmap here; OnError is the default of a KFP 2.17+ "
     "install"),
    (None, "2.16.1", "??   retries: 3 of extract_bottlenecks, train_head, fine_tune after 60 s, "
     "120 s, 240 s, within 48h of each step's first start; preempted or evicted pods are "
     "retried, pods lost with a node not"),
])  # fmt: skip
def test_doctor_says_which_stopped_pods_argo_will_retry(defaults, version, line, tmp_path,
                                                         monkeypatch):  # fmt: skip
    # Before: "a pod lost with its node ends in Argo's Error state and is not retried",
    # whatever the cluster: on KFP 2.17's default install the opposite holds, and a
    # preempted pod (Failed) is the one not retried.
    fake_kubectl(tmp_path, defaults)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with FakeKfp(version=version) as kfp:
        result = CliRunner().invoke(cli, ["doctor", "--host", kfp.host, "--image", "x.invalid/a:b"])
    retries = [line for line in result.stdout.splitlines() if " retries: " in line][0]
    assert retries.startswith(line), retries
