"""What an agent reports of its usage: a sample shared by the parser's tests
and the usage action's (tests/deploy/test_usage_action.py)."""

from __future__ import annotations

CLAUDE_RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "duration_ms": 91234,
    "num_turns": 14,
    "result": "Done: the fix is in src/auth.py",
    "session_id": "0b7f3d55-1c1e-4a55-9f0f-4b8a5c1e2d3f",
    "total_cost_usd": 0.6123,
    "usage": {"input_tokens": 33, "cache_creation_input_tokens": 21000,
              "cache_read_input_tokens": 410000, "output_tokens": 6100},
    "modelUsage": {
        "claude-sonnet-4-5-20250929": {"inputTokens": 30, "outputTokens": 6000,
                                       "cacheReadInputTokens": 410000,
                                       "cacheCreationInputTokens": 21000, "costUSD": 0.6},
        "claude-haiku-4-5-20251001": {"inputTokens": 3, "outputTokens": 100,
                                      "cacheReadInputTokens": 0,
                                      "cacheCreationInputTokens": 0, "costUSD": 0.0123},
    },
}
