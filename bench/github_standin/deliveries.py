"""Webhook deliveries as GitHub makes them: signed POSTs to the App's
webhook, recorded, listed and redelivered through the App's endpoints."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from bench.github_standin.model import (
    Call,
    HookDelivery,
    HttpError,
    _iso,
    _now,
    _Paged,
    example,
)
from bench.github_standin.pace import Pace


class Deliveries(Pace):
    """Sending, listing and redelivering webhook deliveries."""

    def send_delivery(self, payload: Any, event: str = "issues", guid: str | None = None,
                      redelivery: bool = False) -> int:
        """POST a signed delivery to ``webhook_url`` as GitHub does, and record
        the attempt (status 0 when nothing answered). Returns the status."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        guid = guid or str(uuid.uuid4())
        headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
                   "X-GitHub-Delivery": guid, "User-Agent": "GitHub-Hookshot/standin"}
        if self.webhook_secret:
            digest = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
        started = time.monotonic()
        status = 0
        if self.webhook_url is not None:
            request = urllib.request.Request(self.webhook_url, data=body, headers=headers,
                                             method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (urllib.error.URLError, OSError):
                status = 0
        data = json.loads(body) if body.strip().startswith(b"{") else {}
        with self.lock:
            self.hook_deliveries.append(HookDelivery(
                id=next(self._delivery_ids), guid=guid, delivered_at=_now(),
                redelivery=redelivery, status_code=status, event=event,
                action=data.get("action") if isinstance(data, dict) else None,
                installation_id=(data.get("installation") or {}).get("id")
                if isinstance(data, dict) else None,
                body=body, duration=round(time.monotonic() - started, 3),
            ))
        return status

    def _list_hook_deliveries(self, call: Call) -> tuple[int, Any]:
        """Newest first; ``per_page`` and an opaque ``cursor`` (GitHub's paging
        for this endpoint: a Link header to the next page)."""
        args = call.request.args
        per_page = min(max(int(args.get("per_page", "30")), 1), self.per_page_max)
        start = int(args.get("cursor") or 0)
        with self.lock:
            newest = sorted(self.hook_deliveries, key=lambda d: d.id, reverse=True)
        wanted = args.get("status")
        if wanted in ("success", "failure"):
            newest = [d for d in newest if (200 <= d.status_code < 300) == (wanted == "success")]
        page = newest[start : start + per_page]
        [template] = example("apps/list-webhook-deliveries", call.base)[:1]
        items = [
            {**template, "id": d.id, "guid": d.guid, "delivered_at": _iso(d.delivered_at),
             "redelivery": d.redelivery, "duration": d.duration,
             "status": "OK" if 200 <= d.status_code < 300 else f"Invalid HTTP Response: "
             f"{d.status_code}" if d.status_code else "Couldn't connect to server",
             "status_code": d.status_code, "event": d.event, "action": d.action,
             "installation_id": d.installation_id, "repository_id": 1296269,
             "throttled_at": None}
            for d in page
        ]
        if start + per_page < len(newest):
            url = f"{call.base}/app/hook/deliveries?per_page={per_page}&cursor={start + per_page}"
            return 200, _Paged(items, f'<{url}>; rel="next"')
        return 200, items

    def _redeliver(self, call: Call) -> tuple[int, Any]:
        wanted = int(call.params["did"])
        with self.lock:
            found = next((d for d in self.hook_deliveries if d.id == wanted), None)
        if found is None:
            raise HttpError(404, "Not Found")
        # GitHub answers 202 and delivers a moment later.
        threading.Thread(
            target=self.send_delivery, args=(found.body, found.event, found.guid, True),
            daemon=True,
        ).start()
        return 202, None

    def _list_installations(self, call: Call) -> tuple[int, Any]:
        [template] = example("apps/list-installations", call.base)[:1]
        with self.lock:
            ids = sorted(self.installations)
        return 200, [{**template, "id": i, "app_id": self.app_id, "app_slug": self.slug,
                      "access_tokens_url": f"{call.base}/app/installations/{i}/access_tokens"}
                     for i in ids]

    def _list_installation_repos(self, call: Call) -> tuple[int, Any]:
        data = example("apps/list-repos-accessible-to-installation", call.base)
        [template] = data["repositories"][:1]
        with self.lock:
            mine = [r for r in self.repos.values() if r.installation_id == call.installation_id]
        repos = []
        for repo in mine:
            owner, name = repo.full_name.split("/")
            repos.append({**template, "name": name, "full_name": repo.full_name,
                          "owner": {**template["owner"], "login": owner},
                          "default_branch": repo.default_branch,
                          "url": f"{call.base}/repos/{repo.full_name}"})
        return 200, {**data, "total_count": len(repos), "repositories": repos}
