"""Handling one ``issues`` delivery, one behaviour per module.

``handler`` (the entry point, ``Handler``) triages a delivery (``triage``),
then decides it under the issue's lock: ``assign`` for an issue to decide
(``override`` when a person chose the model by label, ``repository_share`` for
the quota one repository may see), ``close`` for one closed, deleted or
transferred; ``write_back`` is the one path that writes a decision's comment
and label to GitHub. ``event`` parses the payload (sans-I/O) and
``freshness`` says whether it is the issue's latest state.
"""
