"""The adapters around the engine: webhooks, GitHub I/O, the quota store, the CLI.

Importing this package imports nothing heavy; each module pulls in Flask or
PyGithub only where it needs them, so the CLI starts fast.
"""
