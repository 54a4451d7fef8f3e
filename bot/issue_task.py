"""GitHub issue JSON -> engine Task.

The issue JSON is the same shape in a webhook payload and in the REST answer
for GET /repos/{owner}/{repo}/issues/{number}. Everything here is defensive:
a payload is untrusted input, and a missing or odd field must give a Task
with defaults, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from model_assigner.bot.github.repo_config import LabelsConfig
from model_assigner.bot.store.state import MAX_DEPENDENCIES
from model_assigner.core.types import Priority, Task, as_utc

# Estimates above this are absurd for one issue; clamping keeps arithmetic and
# comments sane whatever a body says.
MAX_ESTIMATE = 1_000_000_000
# GitHub caps an issue body at 65,536 characters; a payload claiming more is
# not from GitHub, and we do not scan it past that.
MAX_BODY_CHARS = 65_536
# GitHub allows 100 labels on an issue, each of at most 50 characters; a
# payload claiming more is not GitHub's, and what is past that is not read.
MAX_LABELS = 100
MAX_LABEL_CHARS = 100
_NUMBER = r"(\d[\d,_]{0,40})"
_PRIORITIES: tuple[Priority, ...] = ("P0", "P1", "P2", "P3", "P4")


def _estimate_patterns(name: str) -> list[re.Pattern[str]]:
    # Only horizontal space where a run of blank lines could be long: a class
    # that also matches newlines, tried from every line start (or three such
    # classes in a row), backtracks quadratically or worse, and a body of
    # 65,536 newlines took over a minute.
    words = r"[ \t]+".join(name.split())
    return [
        # "Estimated files: 12", "**Estimated LOC:** 300", "estimated loc = 40"
        re.compile(rf"^[ \t>*_-]*{words}[ \t*_]*[:=][ \t*_]*{_NUMBER}", re.I | re.M),
        # Issue forms: "### Estimated files" then the answer on a later line
        # (GitHub stores form bodies with CRLF line ends).
        re.compile(
            rf"^#{{1,6}}[ \t]*{words}[ \t]*\r?\n(?:[ \t]*\r?\n)*[ \t]*{_NUMBER}[ \t]*\r?$",
            re.I | re.M,
        ),
    ]


_FILES_PATTERNS = _estimate_patterns("estimated files")
_LOC_PATTERNS = _estimate_patterns("estimated loc")
_REF = r"((?:[\w.-]+/[\w.-]+)?#\d{1,10})"
_REF_LIST = rf"{_REF}(?:\s*(?:,|and|&)\s*{_REF})*"
_DEPENDS = re.compile(rf"\b(?:depends\s+on|blocked\s+by)\s*:?\s*({_REF_LIST})", re.I)
_BLOCKS = re.compile(rf"\bblocks\s*:?\s*({_REF_LIST})", re.I)
_ONE_REF = re.compile(_REF)


def issue_key(repo: str, number: int | str) -> str:
    return f"{repo}#{number}"


def _to_estimate(digits: str) -> int:
    value = digits.replace(",", "").replace("_", "")
    if len(value) > len(str(MAX_ESTIMATE)):
        return MAX_ESTIMATE
    return min(int(value), MAX_ESTIMATE)


def parse_estimate(body: str, patterns: list[re.Pattern[str]]) -> int:
    for pattern in patterns:
        match = pattern.search(body)
        if match:
            return _to_estimate(match.group(1))
    return 0


def _refs(body: str, pattern: re.Pattern[str], repo: str, exclude: str = "") -> list[str]:
    """The distinct issues named, in order, at most MAX_DEPENDENCIES of them:
    a 65 KB body can name ten thousand, and what is kept goes to the store
    (a dict keeps the check for a repeat O(1))."""
    found: dict[str, None] = {}
    for match in pattern.finditer(body):
        for ref in _ONE_REF.finditer(match.group(1)):
            text = ref.group(0)
            key = text if not text.startswith("#") else f"{repo}{text}"
            if key != exclude:
                found[key] = None
                if len(found) >= MAX_DEPENDENCIES:
                    return list(found)
    return list(found)


def parse_dependencies(body: str, repo: str, exclude: str = "") -> list[str]:
    """``Depends on #N`` / ``Blocked by #N`` (also ``owner/repo#N``, lists),
    ``exclude`` (the issue itself) left out; at most MAX_DEPENDENCIES."""
    return _refs(body, _DEPENDS, repo, exclude)


def parse_blocks(body: str, repo: str, exclude: str = "") -> list[str]:
    return _refs(body, _BLOCKS, repo, exclude)


def label_names(issue: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    labels = issue.get("labels")
    if not isinstance(labels, list):
        return names
    for label in labels[:MAX_LABELS]:
        name = label.get("name") if isinstance(label, Mapping) else label
        if isinstance(name, str) and name.strip() and len(name) <= MAX_LABEL_CHARS:
            names.append(name.strip())
    return names


def priority_of(labels: Iterable[str], config: LabelsConfig) -> Priority | None:
    """The highest priority any label gives; None when no label gives one."""
    found: list[Priority] = []
    for name in labels:
        lowered = name.lower()
        upper = name.upper()
        if upper in _PRIORITIES:
            found.append(upper)
        elif lowered in config.priority_aliases:
            found.append(config.priority_aliases[lowered])
    return min(found) if found else None


def is_priority_label(name: str, config: LabelsConfig) -> bool:
    return name.upper() in _PRIORITIES or name.lower() in config.priority_aliases


def parse_due(issue: Mapping[str, Any]) -> datetime | None:
    milestone = issue.get("milestone")
    if not isinstance(milestone, Mapping):
        return None
    due = milestone.get("due_on")
    if not isinstance(due, str):
        return None
    try:
        # In UTC here: a date at the edge of the calendar (year 1 or 9999 with
        # an offset) overflows on conversion, and that must not escape.
        return as_utc(datetime.fromisoformat(due.replace("Z", "+00:00")))
    except (ValueError, OverflowError):
        return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def issue_to_task(
    issue: Mapping[str, Any],
    repo: str,
    labels_config: LabelsConfig,
    workspace_files: int | None = None,
    dependents: Collection[str] = (),
) -> Task:
    """``dependents``: other open issues known to depend on this one."""
    number = issue.get("number")
    key = issue_key(repo, number if isinstance(number, int) else "?")
    body = _text(issue.get("body"))[:MAX_BODY_CHARS]
    names = label_names(issue)
    found = dict.fromkeys(parse_blocks(body, repo, key))
    for dependent in dependents:
        if dependent != key and len(found) < 2 * MAX_DEPENDENCIES:
            found[dependent] = None
    blocks = list(found)
    return Task(
        id=key,
        title=_text(issue.get("title")),
        description=body,
        priority=priority_of(names, labels_config),
        labels=[
            n
            for n in names
            if not is_priority_label(n, labels_config) and not labels_config.is_model_label(n)
        ],
        estimated_files=parse_estimate(body, _FILES_PATTERNS),
        estimated_loc=parse_estimate(body, _LOC_PATTERNS),
        dependencies=parse_dependencies(body, repo, key),
        workspace_path=repo,
        deadline=parse_due(issue),
        workspace_files=workspace_files,
        blocks=blocks,
    )
