"""`responses` registrations for exactly the REST calls PyGithub makes for the
bot, answered with GitHub's documented examples.

PyGithub always writes the port (``https://api.github.com:443/...``), so that
is the form registered here; query strings and JSON bodies are matched
exactly, so a call with another body or query is not answered (and fails the
test with ConnectionError).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass
from typing import Any

import responses
from responses import matchers

from model_assigner.bot.comment import MARKER
from tests.bot.support import BOT, INSTALLATION, REPO, SLUG, rest_example

API = "https://api.github.com:443"
R = f"{API}/repos/{REPO}"
BRANCH = "master"  # the payloads' repository.default_branch
_branch = rest_example("repos/get-branch")
COMMIT_SHA: str = _branch["commit"]["sha"]
TREE_SHA: str = _branch["commit"]["commit"]["tree"]["sha"]
TOKEN = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"


@dataclass(frozen=True)
class Call:
    method: str
    url: str  # without the https://api.github.com:443 prefix
    body: Any  # parsed JSON, or None

    @property
    def path(self) -> str:
        return self.url.split("?", 1)[0]


def _marker_body(request: Any) -> tuple[bool, str]:
    """A comment body: only the "body" key, starting with the hidden marker."""
    try:
        data = json.loads(request.body)
    except (TypeError, ValueError):
        return False, "body is not JSON"
    ok = isinstance(data, dict) and set(data) == {"body"} and data["body"].startswith(MARKER)
    return ok, "" if ok else f"not a marked comment body: {data!r}"


class RestMock:
    """Register answers on a RequestsMock; read back the calls made."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps

    # -- App endpoints ---------------------------------------------------------

    def app(self) -> None:
        data = rest_example("apps/get-authenticated")
        data.update(slug=SLUG, name=SLUG)
        self.rsps.get(f"{API}/app", json=data)

    def token(
        self, installation: int = INSTALLATION, expires_at: str = "2099-01-01T00:00:00Z"
    ) -> None:
        data = rest_example("apps/create-installation-access-token")
        data.update(token=TOKEN, expires_at=expires_at)
        self.rsps.post(
            f"{API}/app/installations/{installation}/access_tokens",
            json=data,
            status=201,
            match=[matchers.json_params_matcher({"permissions": {}})],
        )

    # -- reads -------------------------------------------------------------------

    def installation_with_issues(self, issues: list[dict[str, Any]]) -> None:
        """What the catch-up's sweep reads: the App's one installation, its one
        repository (REPO) and that repository's open ``issues``."""
        installations = rest_example("apps/list-installations")
        installations[0].update(id=INSTALLATION)
        self.rsps.get(f"{API}/app/installations", json=installations[:1])
        repo = rest_example("repos/get")
        repo.update(full_name=REPO, default_branch="main", url=f"{API}/repos/{REPO}")
        listing = rest_example("apps/list-repos-accessible-to-installation")
        listing.update(total_count=1, repositories=[repo])
        self.rsps.get(f"{API}/installation/repositories", json=listing)
        self.rsps.get(f"{API}/repos/{REPO}/issues", json=issues)

    def issue(self, issue: dict[str, Any], status: int = 200) -> None:
        number = issue["number"]
        if status == 200:
            self.rsps.get(f"{R}/issues/{number}", json=issue)
        else:
            self.rsps.get(f"{R}/issues/{number}", json={"message": "x"}, status=status)

    def branch(self, status: int = 200) -> None:
        data = rest_example("repos/get-branch")
        data["name"] = BRANCH
        self.rsps.get(f"{R}/branches/{BRANCH}", json=data, status=status)

    def tree(self, blobs: int | None = None) -> None:
        data = rest_example("git/get-tree.response-recursively-retrieving-a-tree")
        if blobs is not None:
            entry = data["tree"][0]
            data["tree"] = [{"path": "src", "mode": "040000", "type": "tree", "sha": "d" * 40}] + [
                {**entry, "path": f"src/f{i}.py", "sha": f"{i:040x}"} for i in range(blobs)
            ]
        self.rsps.get(
            f"{R}/git/trees/{TREE_SHA}",
            json=data,
            match=[matchers.query_param_matcher({"recursive": "1"})],
        )

    def config(self, text: str | None) -> None:
        """GET .github/model-assigner.yml at the default branch's commit (404: none)."""
        url = f"{R}/contents/.github/model-assigner.yml"
        match = [matchers.query_param_matcher({"ref": COMMIT_SHA})]
        if text is None:
            self.rsps.get(url, json={"message": "Not Found"}, status=404, match=match)
            return
        data = rest_example("repos/get-content")
        raw = text.encode()
        # The documented example's content is not valid base64 (see the README).
        data.update(
            name="model-assigner.yml",
            path=".github/model-assigner.yml",
            size=len(raw),
            content=base64.encodebytes(raw).decode(),
        )
        self.rsps.get(url, json=data, match=match)

    def workspace(self, config: str | None = None) -> None:
        self.branch()
        self.tree()
        self.config(config)

    def comments(self, number: int, comments: list[tuple[int, str, str]]) -> None:
        """GET comments: ``(id, login, body)`` each; logins ending in [bot] are Bots."""
        template = rest_example("issues/list-comments")[0]
        items = []
        for cid, login, body in comments:
            item = copy.deepcopy(template)
            item.update(
                id=cid,
                url=f"https://api.github.com/repos/{REPO}/issues/comments/{cid}",
                body=body,
                issue_url=f"https://api.github.com/repos/{REPO}/issues/{number}",
            )
            item["user"] = {
                **item["user"],
                "login": login,
                "type": "Bot" if login.endswith("[bot]") else "User",
            }
            items.append(item)
        self.rsps.get(f"{R}/issues/{number}/comments", json=items)

    # -- writes ------------------------------------------------------------------

    def create_comment(self, number: int, comment_id: int = 501, status: int = 201) -> None:
        data = rest_example("issues/create-comment")
        data.update(
            id=comment_id,
            url=f"https://api.github.com/repos/{REPO}/issues/comments/{comment_id}",
        )
        data["user"] = {**data["user"], "login": BOT, "type": "Bot"}
        self.rsps.post(
            f"{R}/issues/{number}/comments",
            json=data if status < 300 else {"message": "Server Error"},
            status=status,
            match=[_marker_body],
        )

    def edit_comment(self, comment_id: int, status: int = 200) -> None:
        data = rest_example("issues/update-comment")
        data.update(id=comment_id)
        self.rsps.patch(
            f"{R}/issues/comments/{comment_id}",
            json=data if status < 300 else {"message": "Not Found" if status == 404 else "x"},
            status=status,
            match=[_marker_body],
        )

    def create_label(
        self, name: str, color: str, description: str, status: int = 201
    ) -> None:
        if status == 422:
            answer: Any = {
                "message": "Validation Failed",
                "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}],
                "documentation_url": "https://docs.github.com/rest/issues/labels#create-a-label",
            }
        else:
            answer = rest_example("issues/create-label")
            answer.update(name=name, color=color, description=description)
        self.rsps.post(
            f"{R}/labels",
            json=answer,
            status=status,
            match=[
                matchers.json_params_matcher(
                    {"name": name, "color": color, "description": description}
                )
            ],
        )

    def add_labels(self, number: int, names: list[str], status: int = 200) -> None:
        self.rsps.post(
            f"{R}/issues/{number}/labels",
            json=rest_example("issues/add-labels"),
            status=status,
            match=[matchers.json_params_matcher(names)],
        )

    def remove_label(self, number: int, quoted_name: str, status: int = 200) -> None:
        self.rsps.delete(
            f"{R}/issues/{number}/labels/{quoted_name}",
            json=rest_example("issues/remove-label") if status == 200 else {"message": "x"},
            status=status,
        )

    # -- what happened -----------------------------------------------------------

    def permission(self, role: str = "write", login: str | None = None) -> None:
        """GET /collaborators/{login}/permission (any login when None): the
        person's role, as GitHub answers it (``role_name``, and the legacy
        base role in ``permission``)."""
        data = rest_example("repos/get-collaborator-permission-level")
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        data.update(permission=legacy, role_name=role)
        if login is None:
            url: Any = re.compile(re.escape(R) + r"/collaborators/[^/]+/permission")
        else:
            url = f"{R}/collaborators/{login}/permission"
            data["user"] = {**data["user"], "login": login}
        self.rsps.get(url, json=data)

    def calls(self) -> list[Call]:
        out = []
        for call in self.rsps.calls:
            request = call.request
            raw = request.body
            text = raw.decode() if isinstance(raw, bytes) else raw if isinstance(raw, str) else ""
            body = json.loads(text) if text else None
            out.append(Call(str(request.method), str(request.url).removeprefix(API), body))
        return out

    def summary(self) -> list[tuple[str, str]]:
        return [(c.method, c.url) for c in self.calls()]
