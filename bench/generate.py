"""Seeded generators of realistic task batches, shared by the benchmarks."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from model_assigner.core.types import Task

LABEL_POOL = [
    "backend",
    "api",
    "frontend",
    "ui",
    "infra",
    "k8s",
    "docs",
    "testing",
    "ml",
    "data",
    "security",
    "hotfix",
    "production",
    "staging",
    "prototype",
    "sandbox",
    "bug",
    "feature",
]
WORDS = [
    "fix", "add", "refactor", "migrate", "improve", "handle",
    "support", "redesign", "clean", "document", "test",
]  # fmt: skip


def generate_tasks(count: int, now: datetime, seed: int = 7) -> list[Task]:
    rng = random.Random(seed)
    tasks = []
    for index in range(count):
        deadline = (
            now + timedelta(hours=rng.choice([1, 3, 10, 30, 100, 300, 1000]))
            if rng.random() < 0.5
            else None
        )
        dependencies = [f"T{rng.randrange(index)}"] if index and rng.random() < 0.15 else []
        tasks.append(
            Task(
                id=f"T{index}",
                title=f"{rng.choice(WORDS)} component {index}",
                description=" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))),
                priority=rng.choice(["P0", "P1", "P2", "P2", "P3", "P4", None]),
                labels=rng.sample(LABEL_POOL, rng.randint(0, 3)),
                estimated_files=rng.choice([0, 1, 2, 3, 5, 8, 12]),
                estimated_loc=rng.choice([0, 50, 150, 400, 900, 2000]),
                dependencies=dependencies,
                workspace_path=f"org/repo-{rng.randrange(20)}",
                deadline=deadline,
                workspace_files=rng.choice([10, 60, 200, 2000]),
            )
        )
    return tasks
