"""What the deploy tests share: the settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def settings_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in list((ROOT / "bot").rglob("*.py")) + list((ROOT / "core").glob("*.py")):
        text = path.read_text()
        names |= set(re.findall(r"""(?:env|environ)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""", text))
        names |= set(re.findall(r"""environ\[\s*["']([A-Z][A-Z0-9_]+)["']""", text))
        # Names held in constants first (ENV = "PROMETHEUS_MULTIPROC_DIR"):
        # every string that is exactly one of our settings' names.
        names |= set(re.findall(
            r"""["']((?:GITHUB|MODEL_ASSIGNER|PROMETHEUS)_[A-Z0-9_]+)["']""", text))
    return names
