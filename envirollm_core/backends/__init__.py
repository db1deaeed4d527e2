"""Talking to LLM servers: Ollama, OpenAI-compatible servers, the embedded engine."""
