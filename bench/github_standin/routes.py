"""The REST endpoints the bot calls: authentication (the App's JWT, an
installation token) and one handler per endpoint, answering in GitHub's
documented shapes."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import jwt
from werkzeug.wrappers import Request, Response

from bench.github_standin.deliveries import Deliveries
from bench.github_standin.model import (
    CONFIG_PATH,
    Call,
    Handler,
    HttpError,
    _iso,
    _json_response,
    _not_modified,
    _now,
    _Paged,
    _sha,
    example,
)


class Routes(Deliveries):
    """The endpoints, over the state, the pace and the deliveries."""

    @functools.cached_property
    def _routes(self) -> list[tuple[str, re.Pattern[str], Handler, str]]:
        """The endpoints: method, path pattern, handler, and the authentication it needs."""
        routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        for method, pattern, handler, auth in (
            ("GET", r"/app", self._get_app, "jwt"),
            ("POST", r"/app/installations/(?P<iid>\d+)/access_tokens", self._token, "jwt"),
            ("GET", repo + r"/installation", self._get_repo_installation, "jwt"),
            ("GET", r"/app/hook/deliveries", self._list_hook_deliveries, "jwt"),
            ("POST", r"/app/hook/deliveries/(?P<did>\d+)/attempts", self._redeliver, "jwt"),
            ("GET", r"/app/installations", self._list_installations, "jwt"),
            ("GET", r"/installation/repositories", self._list_installation_repos, "token"),
            ("GET", repo, self._get_repo, "token"),
            ("GET", repo + r"/issues", self._list_issues, "token"),
            ("GET", repo + r"/issues/(?P<number>\d+)", self._get_issue, "token"),
            ("GET", repo + r"/issues/(?P<number>\d+)/comments", self._list_comments, "token"),
            ("POST", repo + r"/issues/(?P<number>\d+)/comments", self._create_comment, "token"),
            ("PATCH", repo + r"/issues/comments/(?P<cid>\d+)", self._update_comment, "token"),
            ("POST", repo + r"/labels", self._create_label, "token"),
            ("POST", repo + r"/issues/(?P<number>\d+)/labels", self._add_labels, "token"),
            (
                "DELETE",
                repo + r"/issues/(?P<number>\d+)/labels/(?P<name>[^/]+)",
                self._remove_label,
                "token",
            ),
            ("GET", repo + r"/branches/(?P<branch>.+)", self._get_branch, "token"),
            ("GET", repo + r"/git/trees/(?P<sha>[^/]+)", self._get_tree, "token"),
            ("GET", repo + r"/contents/(?P<path>.+)", self._get_content, "token"),
            (
                "GET",
                repo + r"/collaborators/(?P<username>[^/]+)/permission",
                self._get_permission,
                "token",
            ),
        ):
            routes.append((method, re.compile(pattern + r"/?\Z"), handler, auth))
        return routes

    def _authenticate(self, header: str | None) -> tuple[str, int | None]:
        if not header:
            return "none", None
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        with self.lock:
            held = self.tokens.get(credential)
        if held is not None and scheme.lower() in ("token", "bearer"):
            installation, expires = held
            return ("token", installation) if expires > _now() else ("invalid", None)
        if scheme.lower() == "bearer":
            try:
                claims = jwt.decode(
                    credential,
                    self.public_key,
                    algorithms=["RS256"],
                    options={"require": ["iat", "exp", "iss"]},
                    leeway=60,
                )
            except jwt.PyJWTError:
                return "invalid", None
            # GitHub: iss is the App's id; a JWT may live at most 10 minutes.
            if str(claims.get("iss")) != str(self.app_id):
                return "invalid", None
            if int(claims["exp"]) - int(claims["iat"]) > 660:
                return "invalid", None
            return "jwt", None
        return "invalid", None

    def _route(
        self,
        request: Request,
        raw_path: str,
        base: str,
        body: Any,
        auth_kind: str,
        installation: int | None,
    ) -> Response:
        for method, pattern, handler, needs in self._routes:
            match = pattern.match(raw_path)
            if match is None or method != request.method:
                continue
            if needs == "jwt" and auth_kind != "jwt":
                if auth_kind == "token":
                    raise HttpError(
                        401,
                        "A JSON web token could not be decoded",
                    )
                raise HttpError(401, "Bad credentials")
            if needs == "token" and auth_kind != "token":
                raise HttpError(401, "Bad credentials")
            params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
            call = Call(request, base, params, body, installation)
            status, payload = handler(call)
            headers: dict[str, str] = {}
            if isinstance(payload, _Paged):
                headers["Link"] = payload.link
                payload = payload.items
            if request.method == "GET" and status == 200:
                # GitHub's ETag: a digest of the answer. A GET naming it in
                # If-None-Match is answered 304 with no body.
                etag = 'W/"' + hashlib.sha256(
                    json.dumps(payload, default=str, sort_keys=True).encode()).hexdigest() + '"'
                headers["ETag"] = etag
                asked = request.headers.get("If-None-Match", "")
                if etag in [tag.strip() for tag in asked.split(",")]:
                    return _not_modified(etag)
            return _json_response(status, payload, headers)
        raise HttpError(404, "Not Found")

    def _get_app(self, call: Call) -> tuple[int, Any]:
        data = example("apps/get-authenticated", call.base)
        data.update(
            id=self.app_id,
            slug=self.slug,
            name=self.slug,
            html_url=f"https://github.com/apps/{self.slug}",
            permissions={"metadata": "read", "contents": "read", "issues": "write"},
            events=["issues"],
        )
        return 200, data

    def _token(self, call: Call) -> tuple[int, Any]:
        installation = int(call.params["iid"])
        with self.lock:
            if installation not in self.installations:
                raise HttpError(404, "Not Found")
            token = "ghs_" + secrets.token_hex(18)
            expires = _now() + self.token_ttl
            self.tokens[token] = (installation, expires)
        data = example("apps/create-installation-access-token", call.base)
        data.update(
            token=token,
            expires_at=_iso(expires),
            permissions={"issues": "write", "contents": "read", "metadata": "read"},
            repository_selection="all",
        )
        data.pop("repositories", None)
        return 201, data

    def _get_repo_installation(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self.repos.get(f"{call.params['owner']}/{call.params['repo']}".lower())
            if repo is None:
                raise HttpError(404, "Not Found")
            data = example("apps/get-repo-installation", call.base)
            data.update(id=repo.installation_id, app_id=self.app_id, app_slug=self.slug)
            return 200, data

    def _get_repo(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            data = example("repos/get", call.base)
            owner, name = repo.full_name.split("/")
            data.update(
                name=name,
                full_name=repo.full_name,
                default_branch=repo.default_branch,
                url=f"{call.base}/repos/{repo.full_name}",
                html_url=f"https://github.com/{repo.full_name}",
            )
            data["owner"] = {**data["owner"], "login": owner}
            return 200, data

    def _list_issues(self, call: Call) -> tuple[int, Any]:
        """GET .../issues?state=open (the only query the bot sends), paged."""
        state = call.request.args.get("state", "open")
        with self.lock:
            repo = self._repo_for(call)
            chosen = [i for _, i in sorted(repo.issues.items())
                      if not i.deleted and (state == "all" or i.state == state)]
            return self._paged(call, chosen, lambda i: self._issue_json(repo, i, call.base),
                               query=f"state={state}&")

    def _get_issue(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            return 200, self._issue_json(repo, self._issue_for(call, repo), call.base)

    def _list_comments(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            issue = self._issue_for(call, repo)
            return self._paged(call, list(issue.comments),
                               lambda c: self._comment_json(repo, issue.number, c, call.base))

    def _create_comment(self, call: Call) -> tuple[int, Any]:
        body = call.body.get("body") if isinstance(call.body, dict) else None
        if not isinstance(body, str) or not body:
            raise HttpError(422, "Validation Failed", errors=[{"field": "body", "code": "missing"}])
        with self.lock:
            repo = self._repo_for(call)
            issue = self._issue_for(call, repo)
            comment = self._add_comment(issue, body, self.bot_login, "Bot")
            return 201, self._comment_json(repo, issue.number, comment, call.base)

    def _update_comment(self, call: Call) -> tuple[int, Any]:
        body = call.body.get("body") if isinstance(call.body, dict) else None
        if not isinstance(body, str) or not body:
            raise HttpError(422, "Validation Failed", errors=[{"field": "body", "code": "missing"}])
        wanted = int(call.params["cid"])
        with self.lock:
            repo = self._repo_for(call)
            for issue in repo.issues.values():
                for comment in issue.comments:
                    if comment.id == wanted:
                        if comment.login != self.bot_login:
                            raise HttpError(403, "Resource not accessible by integration")
                        comment.body, comment.updated_at = body, _now()
                        return 200, self._comment_json(repo, issue.number, comment, call.base)
        raise HttpError(404, "Not Found")

    def _create_label(self, call: Call) -> tuple[int, Any]:
        data = call.body if isinstance(call.body, dict) else {}
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise HttpError(422, "Validation Failed", errors=[{"field": "name", "code": "missing"}])
        color = str(data.get("color") or "ededed").lstrip("#")
        with self.lock:
            repo = self._repo_for(call)
            if name.lower() in repo.labels:
                raise HttpError(
                    422,
                    "Validation Failed",
                    errors=[{"resource": "Label", "code": "already_exists", "field": "name"}],
                )
            description = data.get("description")
            if not isinstance(description, str):
                description = None
            label = self._label(repo, name, color, description)
            return 201, self._label_json(repo, label, call.base)

    def _add_labels(self, call: Call) -> tuple[int, Any]:
        names = call.body.get("labels") if isinstance(call.body, dict) else call.body
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise HttpError(422, "Invalid request.\n\nFor 'links/0/schema', nil is not an array.")
        with self.lock:
            repo = self._repo_for(call)
            issue = self._issue_for(call, repo)
            for name in names:
                # GitHub creates a missing label (default colour) when it is added.
                label = repo.labels.get(name.lower()) or self._label(repo, name, "ededed")
                if label.name.lower() not in (n.lower() for n in issue.labels):
                    issue.labels.append(label.name)
            issue.updated_at = _now()
            return 200, self._issue_labels_json(repo, issue, call.base)

    def _remove_label(self, call: Call) -> tuple[int, Any]:
        name = call.params["name"]
        with self.lock:
            repo = self._repo_for(call)
            issue = self._issue_for(call, repo)
            if name.lower() not in (n.lower() for n in issue.labels):
                raise HttpError(404, "Label does not exist")
            issue.labels = [n for n in issue.labels if n.lower() != name.lower()]
            issue.updated_at = _now()
            return 200, self._issue_labels_json(repo, issue, call.base)

    def _get_branch(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            if call.params["branch"] != repo.default_branch:
                raise HttpError(404, "Branch not found")
            commit_sha, tree_sha = repo.commit_sha, repo.tree_sha
            api = f"{call.base}/repos/{repo.full_name}"
        data = example("repos/get-branch", call.base)
        data["name"] = repo.default_branch
        commit = data["commit"]
        commit.update(
            sha=commit_sha,
            url=f"{api}/commits/{commit_sha}",
            html_url=f"https://github.com/{repo.full_name}/commit/{commit_sha}",
            comments_url=f"{api}/comments/{commit_sha}/comments",
        )
        commit["commit"]["url"] = f"{api}/git/commits/{commit_sha}"
        commit["commit"]["tree"] = {"sha": tree_sha, "url": f"{api}/git/trees/{tree_sha}"}
        data["_links"] = {
            "html": f"https://github.com/{repo.full_name}/tree/{repo.default_branch}",
            "self": f"{api}/branches/{repo.default_branch}",
        }
        data["protection_url"] = f"{api}/branches/{repo.default_branch}/protection"
        return 200, data

    def _get_tree(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            if call.params["sha"] not in (repo.tree_sha, repo.commit_sha, repo.default_branch):
                raise HttpError(404, "Not Found")
            paths = repo.paths()
            tree_sha = repo.tree_sha
        recursive = call.request.args.get("recursive") not in (None, "", "0", "false")
        api = f"{call.base}/repos/{repo.full_name}"
        entries: list[dict[str, Any]] = []
        seen_dirs: set[str] = set()
        for path in paths:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in seen_dirs and (recursive or depth == 1):
                    seen_dirs.add(folder)
                    sha = _sha("dir", repo.full_name, repo.revision, folder)
                    entries.append(
                        {"path": folder, "mode": "040000", "type": "tree", "sha": sha,
                         "url": f"{api}/git/trees/{sha}"}
                    )
            if recursive or len(parts) == 1:
                sha = _sha("blob", path)
                entries.append(
                    {"path": path, "mode": "100644", "type": "blob", "size": 100, "sha": sha,
                     "url": f"{api}/git/blobs/{sha}"}
                )
        data = example("git/get-tree.response-recursively-retrieving-a-tree", call.base)
        data.update(sha=tree_sha, url=f"{api}/git/trees/{tree_sha}", tree=entries, truncated=False)
        return 200, data

    def _get_permission(self, call: Call) -> tuple[int, Any]:
        """GET /repos/{o}/{r}/collaborators/{username}/permission: the role in
        ``role_name``, the legacy base role in ``permission`` (maintain reads
        as write, triage as read), as GitHub documents it."""
        repo = self._repo_for(call)
        login = call.params["username"]
        role = repo.roles.get(login.lower(), repo.default_role)
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        data = example("repos/get-collaborator-permission-level", call.base)
        data.update(permission=legacy, role_name=role)
        data["user"] = self._user_json(login, "User", call.base)
        return 200, data

    def _get_content(self, call: Call) -> tuple[int, Any]:
        path = call.params["path"]
        ref = call.request.args.get("ref")
        with self.lock:
            repo = self._repo_for(call)
            if ref not in (None, repo.default_branch, repo.commit_sha):
                raise HttpError(404, f"No commit found for the ref {ref}")
            text = repo.config_text if path == CONFIG_PATH else None
            commit_sha = repo.commit_sha
        if text is None:
            raise HttpError(404, "Not Found")
        raw = text.encode("utf-8")
        sha = _sha("blob", path, text)
        api = f"{call.base}/repos/{repo.full_name}"
        data = example("repos/get-content", call.base)
        data.update(
            type="file",
            encoding="base64",
            size=len(raw),
            name=path.rsplit("/", 1)[-1],
            path=path,
            content=base64.encodebytes(raw).decode(),  # GitHub wraps at 60-76 columns
            sha=sha,
            url=f"{api}/contents/{path}?ref={commit_sha}",
            git_url=f"{api}/git/blobs/{sha}",
            html_url=f"https://github.com/{repo.full_name}/blob/{commit_sha}/{path}",
            download_url=None,
            _links={
                "self": f"{api}/contents/{path}?ref={commit_sha}",
                "git": f"{api}/git/blobs/{sha}",
                "html": f"https://github.com/{repo.full_name}/blob/{commit_sha}/{path}",
            },
        )
        return 200, data
