"""Build hook: ship the top-level defaults inside the installed package.

Everything else about the package is in pyproject.toml. ``config/`` (and the
Procfile, the examples and the App manifest) stay at the top level of the
repository, the one source of truth; a wheel has no top level to read, so the
build copies them into ``model_assigner/bot/shipped/`` (bot/resources.py finds them there).
An editable install reads the checkout and needs no copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {
    "config": ["*.yaml"],
    "examples": ["*.yaml", "*.json"],
    "deploy": ["app.yml"],
    ".": ["Procfile"],
}


class BuildWithDefaults(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "model_assigner" / "bot" / "shipped"
        for folder, patterns in SHIPPED.items():
            for pattern in patterns:
                for source in sorted((HERE / folder).glob(pattern)):
                    destination = target / folder / source.name
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, destination)


setup(cmdclass={"build_py": BuildWithDefaults})
