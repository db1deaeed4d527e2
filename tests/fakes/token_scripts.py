"""Token scripts the job tests and the page tests share: a fast model and a slow one (about 0.4 s a run)."""

from __future__ import annotations

from tests.fakes.scripted_server import TokenScript

FAST = TokenScript(tokens=[f"w{i} " for i in range(12)], ttft_s=0.02, tokens_per_s=400.0)
SLOW = TokenScript(tokens=[f"w{i} " for i in range(10)], ttft_s=0.05, tokens_per_s=25.0)  # ~0.4 s a run
