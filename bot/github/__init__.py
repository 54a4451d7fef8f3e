"""The GitHub adapter: the ``IssueGateway`` protocol the handler talks to
(``gateway.py``), its PyGithub implementation (``api.py``), the App's
credentials check, the repository's own config file, and GitHub Actions' OIDC
tokens. Imports inside are absolute, so ``import github`` still means PyGithub.
"""
