"""The delivery queue: accepted deliveries waiting for a worker (``jobs.py``
on SQLite via ``db.py``, ``pg.py`` on PostgreSQL), the workers that decide
them (``worker.py``), the per-installation write pacing (``ratelimit.py``) and
the periodic catch-up (``catchup.py``, ``redecide.py``). Imports inside are
absolute, so ``import queue`` still means the standard library's.
"""
