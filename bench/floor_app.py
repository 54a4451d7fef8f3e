"""The benchmark's floor: the least a webhook endpoint must do. It verifies
the signature over the raw body, parses the JSON and answers 204; nothing
else. Served by the same gunicorn command as the bot (the Procfile's web:
line with this factory), so the difference between the two is the bot's work.

    gunicorn ... 'bench.floor_app:create_app()'
"""

from __future__ import annotations

import json
import os

from flask import Flask, Response, request

from model_assigner.bot.web.signature import verify


def create_app() -> Flask:
    secret = os.environ.get("GITHUB_WEBHOOK_SECRET") or ""
    app = Flask("floor")

    @app.post("/webhook")
    def webhook() -> Response:
        body = request.get_data(cache=False)
        if not verify(secret, body, request.headers.get("X-Hub-Signature-256")):
            return Response(status=401)
        try:
            json.loads(body)
        except ValueError:
            return Response(status=400)
        return Response(status=204)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", status=200)

    return app
