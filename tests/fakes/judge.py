"""A scripted OpenAI-compatible judge on 127.0.0.1, with the quirks of real servers, and a run for it to grade.

`formats` says which `response_format` types the server takes: OpenAI and
vLLM take `json_schema`; llama-cpp-python's server answers HTTP 500 with a
validation error to it and takes only `json_object` (with a `schema`); some
servers take none. With `drops_system`, the chat template drops the system
message, as llama-cpp-python's `gemma` format does, and the prompt token
count shows it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from envirollm_core.records import RunResult, prompt_hash
from tests.fakes.scripted_server import Reply, Request, ScriptedServer, json_reply

CHAT = ("POST", "/v1/chat/completions")
LLAMA_CPP_JSON_SCHEMA_ERROR = (
    "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
)


@dataclass
class ScriptedJudge:
    """What the scripted judge says, and how its server behaves."""

    content: str | Callable[[Request], str] = '{"reasoning": "fine", "score": 4}'
    formats: tuple[str, ...] = ("json_schema", "json_object")
    drops_system: bool = False
    delay_s: float = 0.0
    status: int = 200
    model: str = "judge-model"
    server: ScriptedServer | None = None
    chats: list[Request] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/v1"

    def graded_chats(self) -> list[Request]:
        """Chat requests other than the one-token probes of the system role."""
        return [r for r in self.chats if r.body.get("max_tokens") != 1]

    def reply(self, request: Request) -> Reply:
        self.chats.append(request)
        body = request.body
        if self.status != 200:
            return json_reply({"error": {"message": f"scripted HTTP {self.status}"}}, status=self.status)
        kind = (body.get("response_format") or {}).get("type")
        if kind and kind not in self.formats:
            if kind == "json_schema" and "json_object" in self.formats:
                return json_reply({"detail": LLAMA_CPP_JSON_SCHEMA_ERROR}, status=500)
            return json_reply({"error": {"message": f"response_format {kind} is not supported"}}, status=400)
        messages = body["messages"]
        seen = [m for m in messages if not (self.drops_system and m["role"] == "system")]
        prompt_tokens = sum(len(m["content"].split()) for m in seen) + 3 * len(seen)
        if body.get("max_tokens") == 1:
            content = "Hi"  # a probe of the system role: one token, whatever the script says
        else:
            content = self.content(request) if callable(self.content) else self.content
        payload = {
            "id": "chatcmpl-judge", "object": "chat.completion", "created": 1_700_000_000, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 9, "total_tokens": prompt_tokens + 9},
        }
        return json_reply(payload, at_s=self.delay_s)


def user_text(request: Request) -> str:
    return "\n".join(m["content"] for m in request.body["messages"] if m["role"] == "user")


def system_text(request: Request) -> str:
    return "\n".join(m["content"] for m in request.body["messages"] if m["role"] == "system")


def json_verdict(**scores: int) -> str:
    return json.dumps({"reasoning": "scripted", **scores})


PROMPT = "What is the capital of Australia?"
ANSWER = "The capital of Australia is Canberra."


def make_run(response: str = ANSWER, *, prompt: str = PROMPT, status: str = "ok", model: str = "m1", preset=None):
    return RunResult(
        id=f"run-{time.perf_counter_ns()}", batch_id="b", created_at=datetime.now(timezone.utc), model=model,
        backend="openai", base_url="http://127.0.0.1:1/v1", prompt=prompt, prompt_hash=prompt_hash(prompt),
        status=status, preset=preset, response=response, e2e_s=1.25, energy_wh=0.5,
        error=None if status == "ok" else "connection refused",
    )


def record_passed_check(base_url: str, model: str) -> None:
    """Keep a passing `judge-check` for this judge, as the command does after five sound grades: for tests of
    the judge's plumbing, whose scripted answers no sound judge would give for the canaries."""
    from envirollm_core.quality.canaries import CANARIES
    from envirollm_core.quality.judge import JudgeEndpoint
    from envirollm_core.quality.judge_checks import record_judge_check

    record_judge_check(JudgeEndpoint(base_url, model).label, {canary.name: True for canary in CANARIES})


def _answer(request) -> str:
    return user_text(request).split("<<ANSWER-")[1].split(">>", 1)[1].split("<</ANSWER-")[0].strip()


def sound_grade(request) -> str:
    """A judge that grades the canaries as a sound judge would."""
    answer = _answer(request)
    if answer == "The capital of Australia is Canberra.":
        return "Rating: [[5]]"
    if not answer or "Sydney" in answer or "Paris" in answer:
        return "Rating: [[1]]"
    return "Rating: [[3]]"  # padded
