"""The deploy files agree with the code: settings, the web command, permissions."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("no web: line in the Procfile")


def settings_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in list((ROOT / "bot").glob("*.py")) + list((ROOT / "core").glob("*.py")):
        text = path.read_text()
        names |= set(re.findall(r"""(?:env|environ)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""", text))
        names |= set(re.findall(r"""environ\[\s*["']([A-Z][A-Z0-9_]+)["']""", text))
    return names


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
    assert "'bot.app:create_app()'" in web
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
    ("GET", "/repos/{owner}/{repo}/issues"): ("issues", "read"),
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
    assert manifest["default_events"] == ["issues"]


def test_every_call_is_a_documented_endpoint() -> None:
    spec = json.loads((ROOT / "tests/fixtures/github/rest-endpoints.json").read_text())
    documented = {(op["method"].upper(), op["path"]) for op in spec["endpoints"]}
    missing = set(CALLS) - documented
    assert not missing, f"not in GitHub's REST description: {sorted(missing)}"


def test_the_code_makes_only_the_listed_calls() -> None:
    """Each PyGithub method the gateway uses maps to one listed call."""
    source = (ROOT / "bot" / "github_api.py").read_text()
    used = set(re.findall(r"\.(get_issue|get_comments|create_comment|edit|create_label|"
                          r"add_to_labels|get_branch|get_git_tree|get_contents|get_app|"
                          r"get_github_for_installation|requestJsonAndCheck)\(", source))
    assert used <= {
        "get_issue", "get_comments", "create_comment", "edit", "create_label", "add_to_labels",
        "get_branch", "get_git_tree", "get_contents", "get_app", "get_github_for_installation",
        "requestJsonAndCheck",
    }
    assert '"DELETE"' in source  # the one raw call: removing a label


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(ROOT) for p in (ROOT / "config").glob("*.yaml"))
    + sorted(p.relative_to(ROOT) for p in DEPLOY.rglob("*.y*ml"))
)
def test_yaml_files_parse(path: Path) -> None:
    docs = list(yaml.safe_load_all((ROOT / path).read_text()))
    assert docs and all(isinstance(doc, dict) for doc in docs if doc is not None)
