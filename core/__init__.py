"""The model assignment engine: pure functions over Tasks, Models and quotas.

Nothing in this package touches the network, GitHub or Flask, and nothing reads
the clock: callers pass ``now``. That keeps every decision reproducible from its
inputs, which is what makes the engine testable and its explanations honest.
"""
