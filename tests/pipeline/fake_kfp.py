"""A fake KFP v2beta1 REST API on 127.0.0.1: records requests, answers like the real one."""

import json
import re
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler

from devtools.local_server import LocalServer


class FakeKfp(LocalServer):
    """Start with `with FakeKfp() as kfp:`; `kfp.host` for kfp.Client, `kfp.requests` to assert."""

    def __init__(self, version: str = "2.17.0"):
        self.version = version  # the backend's tag_name in /healthz
        self.requests: list[dict] = []
        self.experiments: dict[str, dict] = {}
        self.recurring: dict[str, dict] = {}
        self.refuse_deletes = False  # answer DELETE as a profile without that permission
        self.multi_user = False
        self.without_ids = False  # answer creations without their ids
        # (status, headers, body) answered to every request, as a login proxy in front does
        self.everything: tuple[int, dict, bytes] | None = None
        self.silent_paths: set[str] = set()  # taken and never answered (until the exit)
        self.closing = threading.Event()
        super().__init__(self._handler())
        self.host = self.url

    def bodies(self, method: str, path: str) -> list[dict]:
        """The JSON bodies of the requests to `method path`."""
        return [r["body"] for r in self.requests if r["method"] == method and r["path"] == path]

    def answer(self, method: str, path: str, body: dict, query: str = "") -> tuple[int, dict]:
        """The response to one request."""
        api = "/apis/v2beta1"
        if path == f"{api}/healthz":  # as backend/src/apiserver/main.go:465-491 at 2.17.0
            return 200, {
                "commit_sha": "0123abcd",
                "tag_name": self.version,
                "multi_user": self.multi_user,
                "pipeline_store": "database",
            }
        if method == "GET" and path == f"{api}/experiments":
            return 200, {
                "experiments": list(self.experiments.values()),
                "total_size": len(self.experiments),
            }
        if method == "POST" and path == f"{api}/experiments":
            experiment = {**body, "experiment_id": str(uuid.uuid4())}
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if method == "POST" and path == f"{api}/runs":
            run_id = "" if self.without_ids else str(uuid.uuid4())
            return 200, {**body, "run_id": run_id, "state": "PENDING"}
        if method == "POST" and path == f"{api}/recurringruns":
            recurring = {**body, "recurring_run_id": str(uuid.uuid4()), "status": "ENABLED"}
            self.recurring[recurring["recurring_run_id"]] = recurring
            return 200, recurring
        if method == "GET" and path == f"{api}/recurringruns":
            return 200, self._page(list(self.recurring.values()), urllib.parse.parse_qs(query))
        match = re.fullmatch(f"{api}/recurringruns/([^/]+)", path)
        if method == "DELETE" and match and self.refuse_deletes:
            message = "User 'me@example.com' is not authorized with reason: (delete)"
            return 403, {"code": 7, "message": message, "details": []}  # grpc-gateway v2
        if method == "DELETE" and match and match.group(1) in self.recurring:
            del self.recurring[match.group(1)]
            return 200, {}
        return 404, {"code": 5, "message": f"fake KFP: no route for {method} {path}"}

    @staticmethod
    def _page(items: list[dict], query: dict) -> dict:
        """One page, as backend/src/apiserver/server/job_server.go:362-384 answers it."""
        start = int(query.get("page_token", ["0"])[0] or 0)
        size = int(query.get("page_size", ["20"])[0])
        page = {"recurringRuns": items[start : start + size], "total_size": len(items)}
        if start + size < len(items):
            page["next_page_token"] = str(start + size)
        return page

    def __exit__(self, *exc):
        self.closing.set()
        super().__exit__(*exc)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                path, _, query = self.path.partition("?")
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": path,
                        "query": query,
                        "body": body,
                        "authorization": self.headers.get("Authorization", ""),
                    }
                )
                if path in fake.silent_paths:
                    fake.closing.wait(60)
                    return
                status, answer = fake.answer(self.command, path, body, query)
                headers, data = {"Content-Type": "application/json"}, json.dumps(answer).encode()
                if fake.everything:
                    status, headers, data = fake.everything
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler
