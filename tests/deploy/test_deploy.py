"""The deploy files agree with the code: settings, the web command, permissions."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.deploy.support import settings_read_by_code

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("no web: line in the Procfile")


def test_every_setting_the_code_reads_is_in_env_example() -> None:
    # Each as "# NAME=default": a copied file overrides nothing by accident.
    documented = set(
        re.findall(r"^# ([A-Z][A-Z0-9_]+)=", (DEPLOY / ".env.example").read_text(), re.M)
    )
    read = settings_read_by_code() | set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", procfile_web()))
    read -= {"PATH"}  # the operating system's, passed through by `serve`
    assert read, "the scan found no settings at all"
    assert read <= documented, f"missing from deploy/.env.example: {sorted(read - documented)}"


def test_procfile_runs_the_app_factory_with_several_workers() -> None:
    web = procfile_web()
    args = shlex.split(web)
    assert args[0] == "gunicorn"
    assert "'model_assigner.bot.web.app:create_app()'" in web
    workers = args[args.index("--workers") + 1]
    default = re.search(r":-(\d+)", workers)
    assert default and int(default.group(1)) > 1
    assert "0.0.0.0:${PORT" in web


def test_dockerfile_cmd_is_the_procfile_command() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd, "no exec-form CMD"
    assert json.loads(cmd.group(1)) == ["sh", "-c", "exec " + procfile_web()]
    assert re.search(r"^USER (?!root)\S+", text, re.M), "must not run as root"
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert re.search(r"^VOLUME .*\/data", text, re.M)


def kube(name: str) -> list[dict]:  # type: ignore[type-arg]
    return [doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()) if doc]


def test_applying_the_kubernetes_folder_leaves_the_secret_alone() -> None:
    """`kubectl apply -f deploy/kubernetes/` applies every .yaml, .yml and
    .json file there: none may hold a Secret, or its placeholders would
    replace the credentials made with `kubectl create secret`."""
    applied = [p for p in (DEPLOY / "kubernetes").iterdir()
               if p.suffix in (".yaml", ".yml", ".json")]
    assert {p.name for p in applied} >= {"deployment.yaml", "service.yaml", "pvc.yaml"}
    kinds = [doc["kind"] for p in applied for doc in kube(p.name)]
    assert "Secret" not in kinds


def test_kubernetes_deployment_matches_the_image_and_store() -> None:
    (deployment,) = kube("deployment.yaml")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    (container,) = spec["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    mount = container["volumeMounts"][0]["mountPath"]
    assert env["MODEL_ASSIGNER_STATE"].startswith(mount + "/")
    claim = spec["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    (pvc,) = kube("pvc.yaml")
    assert pvc["metadata"]["name"] == claim
    secret_name = container["envFrom"][0]["secretRef"]["name"]
    (secret,) = kube("secret.yaml.example")
    assert secret["metadata"]["name"] == secret_name
    assert {"GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET"} <= set(
        secret["stringData"]
    )
    (service,) = kube("service.yaml")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


# Every REST call the bot makes, and the App permission that covers it
# (GitHub's docs, "Permissions required for GitHub Apps").
CALLS = {
    ("GET", "/app"): None,  # the App's JWT, no installation permission
    ("POST", "/app/installations/{installation_id}/access_tokens"): None,
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}"): ("issues", "read"),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): ("issues", "read"),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): ("issues", "write"),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}"): ("issues", "write"),
    ("POST", "/repos/{owner}/{repo}/labels"): ("issues", "write"),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"): ("issues", "write"),
    ("DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"): ("issues", "write"),
    ("GET", "/repos/{owner}/{repo}/branches/{branch}"): ("contents", "read"),
    ("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}"): ("contents", "read"),
    ("GET", "/repos/{owner}/{repo}/contents/{path}"): ("contents", "read"),
    ("GET", "/repos/{owner}/{repo}/issues"): ("issues", "read"),  # plan
    ("GET", "/repos/{owner}/{repo}"): ("metadata", "read"),  # plan: the default branch
    ("GET", "/repos/{owner}/{repo}/installation"): None,  # plan: the App's JWT
    # who may choose a model with a label (issue 12)
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission"): ("metadata", "read"),
}
LEVEL = {"read": 1, "write": 2}


def test_app_manifest_grants_every_permission_the_calls_need_and_no_more() -> None:
    manifest = yaml.safe_load((DEPLOY / "app.yml").read_text())
    granted = manifest["default_permissions"]
    needed: dict[str, str] = {"metadata": "read"}
    for permission in filter(None, CALLS.values()):
        scope, level = permission
        if LEVEL[level] > LEVEL.get(needed.get(scope, ""), 0):
            needed[scope] = level
    assert granted == needed
    # issue_comment: usage reports in a comment (docs/usage-reports.md).
    assert manifest["default_events"] == ["issues", "issue_comment"]


def test_every_call_is_a_documented_endpoint() -> None:
    spec = json.loads((ROOT / "tests/fixtures/github/rest-endpoints.json").read_text())
    documented = {(op["method"].upper(), op["path"]) for op in spec["endpoints"]}
    missing = set(CALLS) - documented
    assert not missing, f"not in GitHub's REST description: {sorted(missing)}"


def _template(method: str, path: str) -> tuple[str, str] | None:
    """The CALLS entry a request the stand-in received is an instance of."""
    for listed_method, template in CALLS:
        # A file path or a branch may hold slashes; every other part is one segment.
        pattern = re.sub(r"\{(path|branch)\}", ".+", template)
        pattern = re.sub(r"\{[a-z_]+\}", "[^/]+", pattern)
        if method == listed_method and re.fullmatch(pattern, path):
            return listed_method, template
    return None


def test_every_call_the_bot_makes_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Drive the real code (PyGithub included) through every path that talks
    to GitHub, against the stand-in, and check each request it receives
    against CALLS, the list the manifest's permissions are checked against;
    and that every listed call was made (the list is not stale)."""
    from bench.github_standin import GitHubStandIn, StandInServer
    from model_assigner.bot.cli import main
    from model_assigner.bot.settings import load_settings
    from model_assigner.bot.wiring import build_handler
    from tests.bot.support import APP_ID, INSTALLATION, REPO, SECRET, app_key, webhook

    key = app_key()
    standin = GitHubStandIn(APP_ID, key.public_pem)
    standin.add_repo(REPO, installation_id=INSTALLATION, files=7,
                     config_text="labels:\n  priority_aliases: {urgent: P0}\n")
    standin.add_issue(REPO, 1, body="Estimated files: 6", labels=["P1", "backend", "hotfix"])
    standin.add_issue(REPO, 2, body="Depends on #1", labels=["P3"])
    with StandInServer(standin) as server:
        env = {
            "GITHUB_APP_ID": str(APP_ID), "GITHUB_PRIVATE_KEY": key.private_pem,
            "GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_API_URL": server.url,
            "MODEL_ASSIGNER_STATE": str(tmp_path / "state.json"),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        handler, _ = build_handler(load_settings())

        def deliver(action: str, delivery: str, payload: dict | None = None) -> str:  # type: ignore[type-arg]
            if payload is None:
                payload = webhook(f"issues.{action}", base=server.url)
                payload["issue"] = standin.issue_json(REPO, 1, server.url)
            outcome = handler.handle("issues", delivery, payload)
            assert outcome.status == 200, outcome.body
            return str(outcome.body["status"])

        opened = webhook("issues.opened", base=server.url)
        opened["issue"] = standin.issue_json(REPO, 1, server.url)
        assert deliver("opened", "d1", opened) == "assigned"
        # A person raises the priority: a new model, so the label is swapped
        # and the comment edited.
        standin.unlabel_issue(REPO, 1, "P1")
        standin.label_issue(REPO, 1, "urgent")
        assert deliver("labeled", "d2") == "assigned"
        # A late copy of the first event: not the latest state, the issue is read.
        assert deliver("opened", "d3", opened) in {"assigned", "override"}
        # A person chooses a model with a label: their role is asked.
        standin.label_issue(REPO, 1, "model:opus-4.6")
        chosen = webhook("issues.labeled", base=server.url, sender="monalisa",
                         label="model:opus-4.6")
        chosen["issue"] = standin.issue_json(REPO, 1, server.url)
        assert deliver("labeled", "d4", chosen) == "override"
        # Every open issue re-planned and written back.
        assert main(["plan", REPO, "--apply"]) == 0
    capsys.readouterr()

    calls = [(c.method, c.path) for c in standin.calls()]
    unlisted = sorted({call for call in calls if _template(*call) is None})
    assert not unlisted, f"calls not in CALLS (and so not checked against app.yml): {unlisted}"
    made = {_template(*call) for call in calls}
    assert made == set(CALLS), f"listed but never made: {sorted(set(CALLS) - made)}"


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(ROOT) for p in (ROOT / "config").glob("*.yaml"))
    + sorted(p.relative_to(ROOT) for p in DEPLOY.rglob("*.y*ml"))
)
def test_yaml_files_parse(path: Path) -> None:
    docs = list(yaml.safe_load_all((ROOT / path).read_text()))
    assert docs and all(isinstance(doc, dict) for doc in docs if doc is not None)
