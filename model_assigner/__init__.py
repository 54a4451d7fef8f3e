"""model-assigner's one import name.

The engine (``core/``) and the adapters (``bot/``) live at the top of the
repository, where the project's layout puts them; this package holds them as
``model_assigner.core`` and ``model_assigner.bot`` (two relative symlinks), so
an installed wheel adds a single top-level name to site-packages rather than
two generic ones (``core`` and ``bot``) that another distribution could also
claim. Every import in the code, the tests and the benchmarks goes through
this name (tests/test_packaging.py checks it).
"""
