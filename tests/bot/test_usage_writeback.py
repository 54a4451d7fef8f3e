"""The usage comment's write-back job (bot/usage_writeback.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.jobs import USAGE_COMMENT, SqliteJobQueue
from model_assigner.bot.queue.ratelimit import RateLimiter
from model_assigner.bot.queue.worker import Worker
from model_assigner.bot.settings import Settings
from model_assigner.bot.usage_writeback import enqueue_usage_comment, usage_comment_task
from model_assigner.bot.wiring import build_handler
from tests.bot.support import APP_ID, REPO, SECRET, app_key
from tests.helpers import CONFIG_DIR

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


def test_a_usage_job_without_an_installation_ends_at_once(tmp_path: Path) -> None:
    """No installation, no gateway that could write: a clear outcome at the
    first attempt, not eight retries to a dead letter."""
    settings = Settings(app_id=APP_ID, private_key=app_key().private_pem, webhook_secret=SECRET,
                        api_url="https://api.github.com", state_path=tmp_path / "state.json",
                        config_dir=CONFIG_DIR, bot_login=None)
    handler, _ = build_handler(settings, clock=lambda: NOW)
    db = QueueDb(tmp_path / "queue.sqlite3")
    queue = SqliteJobQueue(db)
    delivery = enqueue_usage_comment(queue, REPO, 1, None)
    Worker(handler, queue, RateLimiter(db), max_attempts=8, retry_base=0.0,
           tasks={USAGE_COMMENT: usage_comment_task(handler)}).drain()
    assert queue.jobs() == []  # none dead, none waiting
    outcome = queue.outcome(delivery)
    assert outcome is not None and outcome[0] == 400
    assert outcome[1]["error"] == "usage_comment job without an installation"
