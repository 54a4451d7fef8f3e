"""Serving the stand-in on loopback: from a thread of this process
(``StandInServer``), or as its own process (``python -m bench.github_standin``)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from bench.github_standin.standin import GitHubStandIn


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class StandInServer:
    """Serve a GitHubStandIn from a thread of this process, on loopback."""

    def __init__(self, standin: GitHubStandIn, host: str = "127.0.0.1", port: int = 0) -> None:
        self.standin = standin
        self.host = host
        self._server: BaseWSGIServer = make_server(
            host, port, standin, threaded=True, request_handler=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> StandInServer:
        self.standin.stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="github-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.standin.stopping.set()  # wake hanging requests
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.github_standin",
        description="Serve the GitHub REST stand-in on loopback (control API under /_standin/).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--app-id", type=int, required=True)
    parser.add_argument("--public-key-file", required=True, help="the App's public key (PEM)")
    parser.add_argument("--slug", default="model-assigner-test")
    parser.add_argument("--repo", action="append", default=[], help="owner/name (repeatable)")
    parser.add_argument("--installation", type=int, default=1)
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args(argv)
    standin = GitHubStandIn(
        args.app_id, Path(args.public_key_file).read_text(encoding="utf-8"), slug=args.slug
    )
    for name in args.repo:
        standin.add_repo(name, installation_id=args.installation, files=args.files)
    server = StandInServer(standin, args.host, args.port)
    print(f"github-standin listening on {server.url}", flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stopping.set()
        server._server.server_close()
    return 0

