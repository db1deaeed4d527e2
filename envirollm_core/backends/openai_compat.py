"""OpenAI-compatible servers (llama.cpp, LM Studio, vLLM, the embedded engine...)."""

from __future__ import annotations

from collections.abc import Iterator

import openai

from envirollm_core.errors import EnviroLLMError

# Local servers need no key, but the client insists on one.
NO_API_KEY = "not-needed"


def stream_text(base_url: str, model: str, prompt: str, max_tokens: int = 128, api_key: str | None = None) -> Iterator[str]:
    """Yield the pieces of one chat completion's text as the server streams them."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key or NO_API_KEY, max_retries=0, timeout=60.0)
    try:
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
    except openai.APIError as exc:
        raise EnviroLLMError(f"{base_url} failed: {exc}") from None
