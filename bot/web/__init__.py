"""The HTTP side: the Flask app (``app.py``), gunicorn's worker class
(``worker.py``), webhook signatures and the usage-report endpoint.

Only this package imports Flask; the command line never imports it.
"""
