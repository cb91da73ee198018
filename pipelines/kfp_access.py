"""Reaching a KFP API server: its credentials, a first check that it is the API, bounded waits.

What `kfp.Client` (SDK 2.17.0) does not do for us:

- Given a host and no token it sends no credentials at all: it looks for in-cluster or
  kubeconfig ones only without a host (`kfp/client/client.py:291-299`), and `--host` is
  required here. In a Kubeflow notebook the profile's token is mounted for it
  (`service_account_token_path`), so it is used when no token is given.
- It follows redirects and reads any body as its answer: behind a Kubeflow ingress with
  no session, a login page's HTML became a recurring run of id None, "scheduled", exit 0.
- It waits for ever on a server that takes a request and never answers (a stuck
  port-forward): no request has a timeout unless each call passes one
  (`kfp_server_api/rest.py:142-149`).

So `check_api` first asks `/apis/v2beta1/healthz`, which every backend answers with a
JSON object naming `multi_user` and needs no credentials of its own
(`backend/src/apiserver/main.go` at 2.5.0 and 2.17.0), without following redirects and
within API_SECONDS; and `bound_requests` gives each of the client's requests the same bound.
"""

import json
import os
import re

from kftransfer.components.core.errors import UserError

API_SECONDS = 30  # the longest wait for one answer of the KFP API
HEALTHZ = "/apis/v2beta1/healthz"
FORWARD = (
    "kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80 and --host http://localhost:8080"
)
TOKEN_FIX = "give a bearer token (--token or KFTRANSFER_KFP_TOKEN)"
CONNECTION_NAME = re.compile(r"^(<[^>]* object at 0x[0-9a-f]+>|\w+\([^)]*\)): ")


def api_url(host: str) -> str:
    """`host` as kfp.Client reads it: https:// when it names no scheme, no trailing `/`."""
    return (host if host.startswith("http") else f"https://{host}").rstrip("/")


def service_account_token_path() -> str:
    """The KFP token a Kubeflow notebook pod has mounted ('' when there is none).

    Kubeflow's PodDefault projects it at `/var/run/secrets/kubeflow/pipelines/token`, or
    where `KF_PIPELINES_SA_TOKEN_PATH` says; the kubelet refreshes it.
    """
    from kfp import client

    path = os.environ.get(client.KF_PIPELINES_SA_TOKEN_ENV) or client.KF_PIPELINES_SA_TOKEN_PATH
    return path if os.path.isfile(path) else ""


def check_api(host: str, bearer: str) -> dict:
    """The server's healthz answer, once `host` proves to be a KFP API that lets us in.

    Args:
        host: the API endpoint.
        bearer: the token to send ('' for none).

    Raises:
        UserError: no answer, a redirect (a login page), a refusal, or an answer that is
            not the KFP API's; the line names the host, what came back and the fix.
    """
    import certifi
    import urllib3

    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    try:
        response = pool.request(
            "GET",
            api_url(host) + HEALTHZ,
            headers=headers,
            redirect=False,
            retries=False,
            timeout=urllib3.Timeout(connect=API_SECONDS, read=API_SECONDS),
        )
    except urllib3.exceptions.HTTPError as err:
        raise UserError(f"cannot reach the KFP API at {host}: {transport_problem(err)}") from err
    location = response.headers.get("Location", "")
    return healthz_answer(host, response.status, location, response.data)


def healthz_answer(host: str, status: int, location: str, body: bytes) -> dict:
    """The healthz JSON object of an answer, or the UserError saying what `host` is instead."""
    if 300 <= status < 400:
        raise UserError(
            f"{host} redirects to {location or 'another page'}, a login page: {TOKEN_FIX}, "
            f"or reach the API itself ({FORWARD})"
        )
    if status in (401, 403):
        raise UserError(f"the KFP API at {host} refused us (HTTP {status}): {TOKEN_FIX}")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status != 200 or not isinstance(answer, dict) or "multi_user" not in answer:
        what = f"HTTP {status}" + ("" if isinstance(answer, dict) else ", not JSON")
        raise UserError(
            f"{host} is not the KFP API: {HEALTHZ} answered {what} (a login page?): check "
            f"--host, e.g. {FORWARD}"
        )
    return answer


def transport_problem(err: Exception) -> str:
    """Why a request got no answer, on one line (urllib3's text, without its object names)."""
    import urllib3

    reason = getattr(err, "reason", None) or err  # a MaxRetryError's last failure
    refused = isinstance(reason, urllib3.exceptions.NewConnectionError)  # a TimeoutError too
    if isinstance(reason, urllib3.exceptions.TimeoutError) and not refused:
        return f"no answer within {API_SECONDS} s (a stuck port-forward? restart it)"
    # "HTTPConnection(host='h', port=1): Failed ...", or "<... object at 0x...>: Failed ..."
    text = CONNECTION_NAME.sub("", str(reason))
    return " ".join(text.split())[:200]


def bound_requests(client) -> None:
    """Makes each request of `client` (a `kfp.Client`) give up after API_SECONDS without an answer.

    Every API of the client shares one REST client; a call that names its own timeout
    keeps it. A request that got no answer is not sent again (urllib3 would, three times,
    for a GET), nor is a redirect followed.
    """
    import urllib3

    rest = client._run_api.api_client.rest_client
    rest.pool_manager.connection_pool_kw["retries"] = urllib3.Retry(total=2, read=0, redirect=0)
    rest.pool_manager.clear()  # the pools made before take the new retries when made again
    request = rest.request

    def bounded(*args, _request_timeout=None, **kwargs):
        bound = _request_timeout or (API_SECONDS, API_SECONDS)
        return request(*args, _request_timeout=bound, **kwargs)

    rest.request = bounded
