"""The size of a task's workspace when it is a folder on this machine.

Only the ``assign`` command's task files name local folders; the engine
(core/tokens.py) takes the size as a number and never looks at a disk. A
GitHub repository's size comes from its git tree (the gateway's
``workspace``), never from a folder of the server's that happens to share
its ``owner/repo`` name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache

from model_assigner.core.types import Task


@lru_cache(maxsize=256)
def count_workspace_files(workspace_path: str) -> int:
    """Files under a local folder, ``.git`` skipped; 0 when it is not a folder.

    Cached because a batch names the same folder many times and a walk of a
    large tree costs far more than a decision."""
    if not workspace_path or not os.path.isdir(workspace_path):
        return 0
    total = 0
    for _root, dirs, files in os.walk(workspace_path):
        dirs[:] = [name for name in dirs if name != ".git"]
        total += len(files)
    return total


def with_local_workspaces(tasks: Iterable[Task]) -> list[Task]:
    """Each task whose size is not given (``workspace_files``) but whose
    ``workspace_path`` names a local folder, with that folder's file count;
    the others unchanged."""
    return [
        task.model_copy(update={"workspace_files": count_workspace_files(task.workspace_path)})
        if task.workspace_files is None and task.workspace_path
        else task
        for task in tasks
    ]
