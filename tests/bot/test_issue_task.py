"""GitHub issue JSON -> engine Task (bot/issue_task.py), fed with GitHub's own
example payloads and with fuzzed ones."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_assigner.bot.github.repo_config import LabelsConfig
from model_assigner.bot.issue_task import (
    MAX_BODY_CHARS,
    MAX_ESTIMATE,
    issue_key,
    issue_to_task,
    label_names,
    parse_blocks,
    parse_dependencies,
    priority_of,
)
from model_assigner.core.assessment import assess
from model_assigner.core.config import ScoringConfig
from model_assigner.core.types import Task
from tests.bot.support import PayloadFactory, rest_example, webhook_payload
from tests.helpers import NOW

REPO = "Codertocat/Hello-World"
FIXTURE_DUE = datetime(2019, 5, 23, 7, 0, tzinfo=UTC)


def issue(**changes: Any) -> dict[str, Any]:
    """The issue of GitHub's `issues.opened` example, with some fields changed."""
    data: dict[str, Any] = webhook_payload("issues.opened")["issue"]
    data.update(changes)
    return data


def with_labels(*names: str, **changes: Any) -> dict[str, Any]:
    labels = [{"id": 1000 + n, "name": name, "color": "ededed"} for n, name in enumerate(names)]
    return issue(labels=labels, **changes)


def task_of(data: dict[str, Any], labels: LabelsConfig, **kwargs: Any) -> Task:
    return issue_to_task(data, REPO, labels, **kwargs)


# --- GitHub's example payloads ------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "number", "has_milestone"),
    [
        ("issues.opened", 1, True),
        ("issues.edited", 1, True),
        ("issues.labeled", 1, True),
        ("issues.unlabeled", 1, False),
        ("issues.milestoned", 2, True),
        ("issues.demilestoned", 2, False),
        ("issues.reopened", 1, True),
        ("issues.deleted", 1, True),
        ("issue_comment.created", 1, True),
    ],
)
def test_webhook_examples(
    webhook: PayloadFactory,
    labels_config: LabelsConfig,
    fixture: str,
    number: int,
    has_milestone: bool,
) -> None:
    payload = webhook(fixture)
    repo = payload["repository"]["full_name"]
    assert repo == REPO
    task = issue_to_task(payload["issue"], repo, labels_config, workspace_files=42)
    assert task.id == f"{REPO}#{number}"
    assert task.title == payload["issue"]["title"]
    assert task.description == (payload["issue"]["body"] or "")
    assert task.labels == ["bug"]
    assert task.priority is None
    assert task.deadline == (FIXTURE_DUE if has_milestone else None)
    assert task.workspace_path == REPO
    assert task.workspace_files == 42
    assert (task.estimated_files, task.estimated_loc) == (0, 0)
    assert task.dependencies == [] and task.blocks == []


def test_rest_issue_has_the_same_shape(labels_config: LabelsConfig) -> None:
    """GET /repos/{owner}/{repo}/issues/{number} answers the same issue JSON."""
    data = rest_example("issues/get")
    task = issue_to_task(data, "octocat/Hello-World", labels_config)
    assert task.id == "octocat/Hello-World#1347"
    assert task.title == "Found a bug"
    assert task.labels == ["bug"]
    assert task.deadline == datetime(2012, 10, 9, 23, 39, 1, tzinfo=UTC)


def test_issue_key() -> None:
    assert issue_key("o/r", 7) == "o/r#7"


# --- priority and labels -------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["P0"], "P0"),
        (["p1"], "P1"),
        (["P4", "bug"], "P4"),
        (["P3", "P1", "P2"], "P1"),
        (["priority: high"], "P1"),
        (["Priority: Critical"], "P0"),
        (["PRIORITY: LOWEST"], "P4"),
        (["P3", "priority: critical"], "P0"),
        (["priority: low", "P2"], "P2"),
        (["bug", "enhancement"], None),
        ([], None),
        (["P5", "P", "P01", "P 0", "priority:high", "high"], None),
    ],
)
def test_priority_from_labels_and_aliases(
    labels_config: LabelsConfig, names: list[str], expected: str | None
) -> None:
    assert task_of(with_labels(*names), labels_config).priority == expected


def test_label_name_is_stripped_before_matching(labels_config: LabelsConfig) -> None:
    # GitHub trims label names; a payload that does not is still read the same.
    assert task_of(with_labels(" P0 "), labels_config).priority == "P0"


def test_configured_aliases(labels_config: LabelsConfig) -> None:
    custom = LabelsConfig(priority_aliases={" Sev 1 ": "P0", "urgent": "P1", "someday": "P4"})
    assert task_of(with_labels("sev 1"), custom).priority == "P0"
    assert task_of(with_labels("URGENT", "someday"), custom).priority == "P1"
    # The default aliases are not in a config that does not list them.
    assert task_of(with_labels("priority: high"), custom).priority is None
    assert task_of(with_labels("priority: high"), custom).labels == ["priority: high"]
    assert priority_of(["someday"], custom) == "P4"


def test_other_labels_are_kept_and_bot_labels_dropped(labels_config: LabelsConfig) -> None:
    data = with_labels(
        "bug",
        "P1",
        "priority: low",
        "model:sonnet-4.5",
        "Model:Opus-4.6",
        "model:deferred",
        "area: backend",
        "type:security",
        "🔥 hot",
        "ドキュメント",
        "needs:🧪",
        "security",
    )
    task = task_of(data, labels_config)
    assert task.priority == "P1"
    assert task.labels == [
        "bug",
        "area: backend",
        "type:security",
        "🔥 hot",
        "ドキュメント",
        "needs:🧪",
        "security",
    ]


def test_custom_model_label_prefix(labels_config: LabelsConfig) -> None:
    custom = LabelsConfig(model_label_prefix="ai/", deferred_label="ai/later")
    task = task_of(with_labels("ai/opus-4.6", "ai/later", "model:sonnet-4.5"), custom)
    assert task.labels == ["model:sonnet-4.5"]


def test_label_shapes(labels_config: LabelsConfig) -> None:
    """Labels as objects (webhooks, REST) or bare names; junk entries skipped."""
    data = issue(
        labels=[
            {"name": "bug"},
            "frontend",
            {"name": None},
            {"color": "fff"},
            None,
            42,
            {"name": "   "},
            ["P0"],
            {"name": "P2"},
        ]
    )
    assert label_names(data) == ["bug", "frontend", "P2"]
    task = task_of(data, labels_config)
    assert task.labels == ["bug", "frontend"]
    assert task.priority == "P2"
    assert label_names(issue(labels=None)) == []
    assert label_names(issue(labels={"name": "bug"})) == []


# --- deadline ------------------------------------------------------------------------


def _milestone(due_on: Any) -> dict[str, Any]:
    data: dict[str, Any] = webhook_payload("issues.milestoned")["milestone"]
    data["due_on"] = due_on
    return data


@pytest.mark.parametrize(
    ("due_on", "expected"),
    [
        ("2026-03-01T08:00:00Z", datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
        ("2026-03-01T08:00:00+02:00", datetime(2026, 3, 1, 6, 0, tzinfo=UTC)),
        ("2026-03-01T08:00:00", datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
        (None, None),
        ("", None),
        ("next tuesday", None),
        ("2026-02-30T00:00:00Z", None),
        (1767225600, None),
        ("9999-12-31T23:59:59-01:00", None),
        ("0001-01-01T00:00:00+01:00", None),
    ],
)
def test_deadline_from_milestone_due_on(
    labels_config: LabelsConfig, due_on: Any, expected: datetime | None
) -> None:
    task = task_of(issue(milestone=_milestone(due_on)), labels_config)
    assert task.deadline == expected
    if task.deadline is not None:
        assert task.deadline.utcoffset() is not None


@pytest.mark.parametrize("milestone", [None, "v1.0", [], {"title": "v1.0"}])
def test_no_usable_milestone_no_deadline(labels_config: LabelsConfig, milestone: Any) -> None:
    assert task_of(issue(milestone=milestone), labels_config).deadline is None


# --- estimates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "files", "loc"),
    [
        ("Estimated files: 12\nEstimated LOC: 300", 12, 300),
        ("estimated files: 4\nestimated loc: 40", 4, 40),
        ("ESTIMATED FILES: 5\nESTIMATED LOC = 50", 5, 50),
        ("**Estimated files:** 7\n**Estimated LOC:** 1,200", 7, 1200),
        ("**Estimated files**: 8\n__Estimated LOC__: 90", 8, 90),
        ("- Estimated files: 3\n* Estimated LOC: 30", 3, 30),
        ("> Estimated   files:   6", 6, 0),
        ("Estimated LOC: 1_000", 0, 1000),
        ("Some text.\n\nEstimated files: 2\r\nEstimated LOC: 20\r\n", 2, 20),
        ("Estimated files: many\nEstimated LOC: ?", 0, 0),
        ("We estimated files: 9 in the chat", 0, 0),
        ("", 0, 0),
    ],
)
def test_estimates_from_body_lines(
    labels_config: LabelsConfig, body: str, files: int, loc: int
) -> None:
    task = task_of(issue(body=body), labels_config)
    assert (task.estimated_files, task.estimated_loc) == (files, loc)


# GitHub stores an issue form's answers as "### <label>", a blank line, the
# answer; with CRLF line ends when created from the web form.
FORM_BODY = (
    "### Description\r\n\r\nThe login page breaks.\r\n\r\n"
    "### Estimated files\r\n\r\n14\r\n\r\n"
    "### Estimated LOC\r\n\r\n2,500\r\n\r\n"
    "### Anything else?\r\n\r\n_No response_"
)


def test_estimates_from_issue_form_sections(labels_config: LabelsConfig) -> None:
    task = task_of(issue(body=FORM_BODY), labels_config)
    assert (task.estimated_files, task.estimated_loc) == (14, 2500)
    lf = FORM_BODY.replace("\r\n", "\n")
    assert (task_of(issue(body=lf), labels_config).estimated_files) == 14


def test_issue_form_without_an_answer(labels_config: LabelsConfig) -> None:
    body = "### Estimated files\n\n_No response_\n\n### Estimated LOC\n\n\n\n"
    task = task_of(issue(body=body), labels_config)
    assert (task.estimated_files, task.estimated_loc) == (0, 0)


@pytest.mark.parametrize(
    "number",
    ["99999999999999999999", "1000000001", "9" * 40, "1,000,000,000,000"],
)
def test_absurd_estimates_are_clamped(labels_config: LabelsConfig, number: str) -> None:
    body = f"Estimated LOC: {number}\n### Estimated files\n\n{number}\n"
    task = task_of(issue(body=body), labels_config)
    assert task.estimated_loc == MAX_ESTIMATE
    assert task.estimated_files == MAX_ESTIMATE


def test_estimate_exactly_at_the_cap_is_kept(labels_config: LabelsConfig) -> None:
    task = task_of(issue(body=f"Estimated LOC: {MAX_ESTIMATE}"), labels_config)
    assert task.estimated_loc == MAX_ESTIMATE
    task = task_of(issue(body=f"Estimated LOC: {MAX_ESTIMATE - 1}"), labels_config)
    assert task.estimated_loc == MAX_ESTIMATE - 1


def test_body_is_read_up_to_githubs_limit(labels_config: LabelsConfig) -> None:
    filler = "x" * (MAX_BODY_CHARS - 1) + "\n"
    task = task_of(issue(body=filler + "Estimated files: 3\nDepends on #9"), labels_config)
    assert len(task.description) == MAX_BODY_CHARS
    assert task.estimated_files == 0
    assert task.dependencies == []


@pytest.mark.parametrize(
    "body",
    [
        "\n" * MAX_BODY_CHARS,
        "\r\n" * (MAX_BODY_CHARS // 2),
        " \n" * (MAX_BODY_CHARS // 2),
        "### Estimated files\n" + " \n" * 30_000,
        "### Estimated files" + " " * 60_000,
        "#\n" * (MAX_BODY_CHARS // 2),
        "estimated files " * 4_000,
        "Depends on " + "a-" * 30_000,
        "Depends on #1, " * 4_000,
        "- " * (MAX_BODY_CHARS // 2),
    ],
    ids=lambda body: repr(body[:12]),
)
def test_hostile_bodies_are_parsed_quickly(labels_config: LabelsConfig, body: str) -> None:
    """No regular expression may backtrack its way to minutes on a 64 KiB body
    (a body of blank lines once took over a minute)."""
    started = time.perf_counter()
    task_of(issue(body=body), labels_config)
    assert time.perf_counter() - started < 0.5


# --- dependencies and blocking ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Depends on #12", ["#12"]),
        ("depends on #12", ["#12"]),
        ("Blocked by #3", ["#3"]),
        ("BLOCKED BY: #3", ["#3"]),
        ("Depends on octo/other-repo#5", ["octo/other-repo#5"]),
        ("Depends on octo.org/repo.js#5", ["octo.org/repo.js#5"]),
        ("Depends on #1, #2", ["#1", "#2"]),
        ("Depends on #1, #2 and #3 & other/repo#4", ["#1", "#2", "#3", "other/repo#4"]),
        ("Depends on #4\nBlocked by #5\nDepends on #4", ["#4", "#5"]),
        ("Depends on #1 (for the API), then #2", ["#1"]),
        ("See #7 and #8", []),
        ("This depends on nothing", []),
    ],
)
def test_dependencies(labels_config: LabelsConfig, body: str, expected: list[str]) -> None:
    full = [ref if not ref.startswith("#") else f"{REPO}{ref}" for ref in expected]
    assert parse_dependencies(body, REPO) == full
    assert task_of(issue(body=body, number=50), labels_config).dependencies == full


def test_an_issue_never_depends_on_or_blocks_itself(labels_config: LabelsConfig) -> None:
    body = "Depends on #1, #2\nBlocks #1, #3"
    task = task_of(issue(body=body), labels_config, dependents=[f"{REPO}#1", f"{REPO}#4"])
    assert task.id == f"{REPO}#1"
    assert task.dependencies == [f"{REPO}#2"]
    assert task.blocks == [f"{REPO}#3", f"{REPO}#4"]


def test_blocks_and_dependents(labels_config: LabelsConfig) -> None:
    body = "Blocks #20, other/repo#3\nblocks: #21"
    assert parse_blocks(body, REPO) == [f"{REPO}#20", "other/repo#3", f"{REPO}#21"]
    task = task_of(
        issue(body=body),
        labels_config,
        dependents=[f"{REPO}#21", "third/repo#9", "third/repo#9"],
    )
    assert task.blocks == [f"{REPO}#20", "other/repo#3", f"{REPO}#21", "third/repo#9"]
    # "Blocked by" is a dependency, never a "Blocks".
    assert task_of(issue(body="Blocked by #20"), labels_config).blocks == []


def test_task_with_dependents_scores_the_blocking_bonus(
    labels_config: LabelsConfig, scoring: ScoringConfig
) -> None:
    plain = issue(milestone=None)
    alone = assess(task_of(plain, labels_config), scoring, NOW)
    blocking = assess(task_of(plain, labels_config, dependents=[f"{REPO}#2"]), scoring, NOW)
    assert alone.breakdown.time_bonus == 0
    assert blocking.breakdown.time_bonus >= scoring.blocking_time_bonus > 0
    assert blocking.value > alone.value


# --- fuzzing: never raises, always a valid Task -------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
label_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        ["P0", "p3", "priority: high", "model:opus-4.6", "model:", "🔥", "a:b:c", "bug", "P9"]
    ),
    st.builds(lambda a, b: f"{a}:{b}", st.text(max_size=10), st.text(max_size=10)),
)
labels_shape = st.one_of(
    json_values,
    st.lists(
        st.one_of(
            label_text,
            st.fixed_dictionaries({"name": st.one_of(label_text, json_values)}),
            json_values,
        ),
        max_size=8,
    ),
)
body_lines = st.sampled_from(
    [
        "Estimated files: 3",
        "**Estimated LOC:** 99999999999999999999",
        "### Estimated files",
        "",
        "12",
        "Depends on #1, #2 and owner/repo#3",
        "Blocked by #0",
        "Blocks #99999999999",
        "depends on",
        "#",
        "\r",
        "Estimated LOC = ",
    ]
)
body_shape = st.one_of(
    json_values,
    st.text(max_size=300),
    st.lists(st.one_of(body_lines, st.text(max_size=30)), max_size=12).map("\n".join),
    st.sampled_from(["x" * 100_000, "\n" * 70_000, "é" * 70_000]),
)
due_shape = st.one_of(
    json_values,
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+14:00", "Z"]),
)
milestone_shape = st.one_of(json_values, st.fixed_dictionaries({"due_on": due_shape}))
issue_shape = st.fixed_dictionaries(
    {},
    optional={
        "number": st.one_of(json_values, st.integers(min_value=1, max_value=2**40)),
        "title": st.one_of(json_values, st.text(max_size=2000)),
        "body": body_shape,
        "labels": labels_shape,
        "milestone": milestone_shape,
        "state": json_values,
        "user": json_values,
    },
)


def _check_task(task: Task, repo: str, labels: LabelsConfig) -> None:
    assert isinstance(task, Task)
    Task.model_validate(task.model_dump())  # passes its own schema
    assert task.id.startswith(f"{repo}#")
    assert task.priority in (None, "P0", "P1", "P2", "P3", "P4")
    assert 0 <= task.estimated_files <= MAX_ESTIMATE
    assert 0 <= task.estimated_loc <= MAX_ESTIMATE
    assert len(task.description) <= MAX_BODY_CHARS
    assert task.id not in task.dependencies and task.id not in task.blocks
    assert len(set(task.dependencies)) == len(task.dependencies)
    assert len(set(task.blocks)) == len(task.blocks)
    assert all(not labels.is_model_label(name) for name in task.labels)
    assert all(priority_of([name], labels) is None for name in task.labels)
    assert task.deadline is None or task.deadline.utcoffset() is not None
    assert task.workspace_path == repo


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(fields=issue_shape, dependents=st.lists(st.text(max_size=20), max_size=4))
def test_fuzzed_issue_never_raises(
    labels_config: LabelsConfig, fields: dict[str, Any], dependents: list[str]
) -> None:
    task = issue_to_task(fields, "owner/repo", labels_config, dependents=dependents)
    _check_task(task, "owner/repo", labels_config)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=issue_shape,
    workspace=st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
)
def test_fuzzed_real_payload_is_a_task_the_engine_can_score(
    labels_config: LabelsConfig,
    scoring: ScoringConfig,
    changes: dict[str, Any],
    workspace: int | None,
) -> None:
    """GitHub's example issue with fields replaced by junk: still a Task, and
    one the engine scores without error."""
    data = issue(**changes)
    task = issue_to_task(data, REPO, labels_config, workspace_files=workspace)
    _check_task(task, REPO, labels_config)
    assessment = assess(task, scoring, NOW)
    assert 0 <= assessment.value <= 100
