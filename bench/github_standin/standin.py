"""The stand-in as a WSGI app: dispatch (record, fault, pace, route) and
the JSON control API (``/_standin/...``) of process mode."""

from __future__ import annotations

import json
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from werkzeug.wrappers import Request, Response

from bench.github_standin.model import (
    HttpError,
    RecordedRequest,
    _json_response,
)
from bench.github_standin.routes import Routes


class GitHubStandIn(Routes):
    """The state and the WSGI app. Thread-safe: one lock guards the state."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
        raw_path = urllib.parse.urlsplit(raw_uri).path if raw_uri else request.path
        path = urllib.parse.unquote(raw_path)
        if path.startswith("/_standin/"):
            return self._control(request, path)
        base = request.host_url.rstrip("/")
        body = self._body(request)
        auth_kind, installation = self._authenticate(request.headers.get("Authorization"))
        record = RecordedRequest(
            method=request.method,
            path=path,
            raw_path=raw_path,
            query=dict(request.args.items()),
            body=body,
            auth=auth_kind,
            started=time.monotonic(),
        )
        with self.lock:
            self.requests.append(record)
            fault = next((f for f in self.faults if f.matches(request.method, path)), None)
            if fault is not None:
                fault.hits += 1
                record.fault = fault.kind
        low, high = self.latency
        if high > 0:
            self.stopping.wait(random.uniform(low, high))
        try:
            if fault is not None:
                answer = self._fault(fault, installation)
                if answer is not None:
                    return self._finish(record, answer)
            limited = self._limited(request.method, auth_kind, installation, path)
            if limited is not None:
                record.fault = "rate_limit"
                return self._finish(record, limited)
            answer = self._route(request, raw_path, base, body, auth_kind, installation)
            if answer.status_code == 304 and installation is not None:
                self._refund(installation)  # a 304 does not count against the limit
            return self._finish(record, answer)
        except HttpError as exc:
            return self._finish(record, _json_response(exc.status, exc.body))

    @staticmethod
    def _finish(record: RecordedRequest, response: Response) -> Response:
        record.status = response.status_code
        record.finished = time.monotonic()
        return response

    @staticmethod
    def _body(request: Request) -> Any:
        data = request.get_data(cache=True)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", errors="replace")

    def _control(self, request: Request, path: str) -> Response:
        """A small JSON API to drive the stand-in from another process."""
        body = self._body(request)
        data = body if isinstance(body, dict) else {}
        what = path[len("/_standin/") :].strip("/")
        try:
            if what == "requests" and request.method == "GET":
                return _json_response(200, [asdict(r) for r in self.calls()])
            if what == "requests" and request.method == "DELETE":
                self.clear_calls()
                return _json_response(204, None)
            if what == "repos" and request.method == "POST":
                repo = self.add_repo(
                    data["full_name"],
                    installation_id=int(data.get("installation_id", 1)),
                    files=int(data.get("files", 20)),
                    default_branch=data.get("default_branch", "main"),
                    config_text=data.get("config_text"),
                )
                return _json_response(201, {"full_name": repo.full_name})
            if what == "issues" and request.method == "POST":
                self.add_issue(
                    data["repo"],
                    int(data["number"]),
                    title=data.get("title", "An issue"),
                    body=data.get("body", ""),
                    labels=data.get("labels", []),
                    milestone_due_on=data.get("milestone_due_on"),
                    author=data.get("author", "octocat"),
                )
                base = request.host_url.rstrip("/")
                return _json_response(201, self.issue_json(data["repo"], int(data["number"]), base))
            match = re.fullmatch(r"issues/([^/]+/[^/]+)/(\d+)", what)
            if match and request.method == "GET":
                issue = self.issue(match.group(1), int(match.group(2)))
                base = request.host_url.rstrip("/")
                return _json_response(
                    200,
                    {
                        "issue": self.issue_json(match.group(1), issue.number, base),
                        "comments": [asdict(c) for c in issue.comments],
                    },
                )
            if what == "faults" and request.method == "POST":
                fault = self.inject_fault(
                    data["path"],
                    str(data.get("kind", "500")),
                    data.get("times", 1),
                    method=data.get("method"),
                    retry_after=data.get("retry_after", 1),
                    hang_seconds=float(data.get("hang_seconds", 5.0)),
                    then_status=data.get("then_status", 502),
                )
                return _json_response(201, asdict(fault))
            if what == "pace" and request.method == "POST":
                low, high = data.get("latency", [0.0, 0.0])
                with self.lock:
                    self.latency = (float(low), float(high))
                limits = data.get("write_limits")
                if limits:
                    self.limit_writes(int(limits[0]), int(limits[1]),
                                      None if limits[2] is None else int(limits[2]))
                else:
                    with self.lock:
                        self.write_limits = None
                return _json_response(204, None)
            if what == "pace" and request.method == "GET":
                with self.lock:
                    return _json_response(200, {"refused": self.refused,
                                                "latency": list(self.latency)})
            if what == "faults" and request.method == "DELETE":
                self.clear_faults()
                return _json_response(204, None)
        except (KeyError, ValueError, TypeError) as exc:
            return _json_response(400, {"message": f"bad control request: {exc!r}"})
        return _json_response(404, {"message": "Not Found"})
