"""An in-memory stand-in for the part of GitHub's REST API that model-assigner calls.

A WSGI app (werkzeug) that keeps the state of a few repositories (issues with
labels and milestone, comments, labels, a git tree of N files, an optional
``.github/model-assigner.yml``), records every request, checks authentication
like GitHub does (a JWT signed with the App's key for ``/app`` endpoints, an
installation token for the others) and can be told to fail.

Endpoints, exactly the ones the bot calls (answers shaped like GitHub's
documented examples in ``tests/fixtures/github/rest-examples``)::

    GET    /app                                       (Bearer JWT)
    POST   /app/installations/{id}/access_tokens      (Bearer JWT; token valid 1 h)
    GET    /repos/{o}/{r}/issues/{n}
    GET    /repos/{o}/{r}/issues/{n}/comments         (paginated: per_page, page, Link)
    POST   /repos/{o}/{r}/issues/{n}/comments
    PATCH  /repos/{o}/{r}/issues/comments/{id}
    POST   /repos/{o}/{r}/labels                      (422 already_exists)
    POST   /repos/{o}/{r}/issues/{n}/labels           (bare JSON list or {"labels": [...]})
    DELETE /repos/{o}/{r}/issues/{n}/labels/{name}
    GET    /repos/{o}/{r}/branches/{branch}
    GET    /repos/{o}/{r}/git/trees/{sha}?recursive=1
    GET    /repos/{o}/{r}/contents/{path}?ref=...     (404 when absent)
    GET    /app/hook/deliveries                       (Bearer JWT; cursor paging, newest first)
    POST   /app/hook/deliveries/{id}/attempts         (Bearer JWT; 202, then redelivers)
    GET    /app/installations                         (Bearer JWT)
    GET    /installation/repositories                 (installation token)

Conditional requests: every 200 answer to a GET carries an ``ETag`` (a
digest of the answer, as GitHub's); a GET whose ``If-None-Match`` names it is
answered ``304 Not Modified`` with no body, and does not count against the
primary limit. ``served(path_glob)`` counts the GETs answered 200 and 304.

GitHub's pace, when asked: ``latency`` (seconds added to every API call,
a (low, high) range), ``limit_writes(per_minute, per_hour, retry_after)``
(the secondary limit on content-creating requests: past it, 403 with
``Retry-After``, or none), ``limit_requests(remaining, reset_in)`` (the
primary limit: past it, 403 with ``x-ratelimit-remaining: 0`` and
``x-ratelimit-reset``). ``refused`` counts the requests a limit refused.

Webhook deliveries: ``send_delivery`` POSTs a signed delivery to
``webhook_url`` and records the attempt as GitHub does (status code, 0 when
nothing answered); the deliveries endpoints list and redeliver them.

Use it in a thread (``StandInServer(standin).start()``; the state is then
read and changed directly on the ``GitHubStandIn`` object), or as its own
process (``python -m bench.github_standin --help``; the state is then read and
changed through the small JSON control API: ``GET``/``DELETE /_standin/requests``,
``POST``/``GET /_standin/pace`` (latency and write limits; the refused count),
``POST /_standin/repos``, ``POST /_standin/issues``, ``GET
/_standin/issues/{o}/{r}/{n}``, ``POST``/``DELETE /_standin/faults``; bodies
are the keyword arguments of the methods of the same names).

Fault injection: ``inject_fault(path_glob, kind, times)`` makes the next
``times`` requests whose path matches answer 500/502/503, a 403 secondary rate
limit (with ``Retry-After``), or hang for ``hang_seconds`` first (then answer
``then_status``, or handle the request normally when it is None: a slow GitHub
that still did the work).

The package imports nothing from pytest or the tests, so that the tests and
the benchmarks share it (it reads GitHub's documented answers, data, from
``tests/fixtures/github/rest-examples``). Its layers, each over the one
before: ``model`` (the data), ``state`` (set-up, inspection, JSON shapes),
``pace`` (rate limits, faults), ``deliveries`` (webhooks), ``routes`` (the
endpoints), ``standin`` (the WSGI app and the control API), ``server``.
"""

from bench.github_standin.model import CONFIG_PATH, FAULT_KINDS, Comment, Fault, Issue, Repo
from bench.github_standin.server import StandInServer, main
from bench.github_standin.standin import GitHubStandIn

__all__ = [
    "CONFIG_PATH", "FAULT_KINDS", "Comment", "Fault", "GitHubStandIn", "Issue", "Repo",
    "StandInServer", "main",
]
