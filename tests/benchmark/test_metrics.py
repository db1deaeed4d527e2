"""Stream metrics by DESIGN.md's timing rules, on synthetic streams with exact times."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from envirollm_core.backends.base import BackendError, Delta, RequestSent, ServerTimings, StreamEnd, TokenUsage
from envirollm_core.benchmark.metrics import decode_rate, measure_stream, percentile


def stream(times, usage=None, server=None, fail=None):
    yield RequestSent(10.0)
    for i, t in enumerate(times):
        if fail is not None and i == fail:
            raise BackendError("the stream dropped midway")
        yield Delta(10.0 + t, content=f"t{i}")
    yield StreamEnd(usage=usage, server=server, finish_reason="stop")


def test_ttft_and_decode_rate_are_exact():
    metrics = measure_stream(stream([0.5, 0.6, 0.7, 0.8, 0.9]))
    assert metrics.ttft_s == pytest.approx(0.5)
    assert metrics.decode_tps == pytest.approx(4 / 0.4)
    assert (metrics.completion_tokens, metrics.token_count_source) == (5, "chunks")
    assert metrics.itl_p50_s == pytest.approx(0.1) and metrics.itl_p95_s == pytest.approx(0.1)


def test_usage_beats_server_native_beats_chunks():
    both = measure_stream(stream([0.1, 0.2, 0.3], usage=TokenUsage(7, 6), server=ServerTimings(8, 5)))
    assert (both.completion_tokens, both.prompt_tokens, both.token_count_source) == (6, 7, "usage")
    # Decode uses the reported count over the chunk span: 6 tokens in 3 chunks.
    assert both.decode_tps == pytest.approx(5 / 0.2)
    native = measure_stream(stream([0.1, 0.2, 0.3], server=ServerTimings(8, 5, decode_tps=40.0)))
    assert (native.completion_tokens, native.prompt_tokens, native.token_count_source) == (5, 8, "server-native")
    assert native.server_decode_tps == 40.0


def test_one_token_has_no_decode_rate():
    metrics = measure_stream(stream([0.2]))
    assert metrics.ttft_s == pytest.approx(0.2) and metrics.decode_tps is None and metrics.itl_p50_s is None


def test_error_keeps_what_arrived():
    metrics = measure_stream(stream([0.1, 0.2, 0.3, 0.4], fail=2))
    assert metrics.error == "the stream dropped midway"
    assert metrics.response == "t0t1" and metrics.ttft_s == pytest.approx(0.1)
    assert metrics.finish_reason is None


def test_failure_before_the_request_has_no_timing():
    def refused():
        raise BackendError("cannot connect")
        yield  # pragma: no cover

    metrics = measure_stream(refused())
    assert (metrics.error, metrics.ttft_s, metrics.e2e_s, metrics.completion_tokens) == ("cannot connect", None, None, None)


@given(st.lists(st.floats(min_value=0.0001, max_value=1.0, allow_nan=False), min_size=2, max_size=60))
def test_decode_rate_is_tokens_minus_one_over_the_span(gaps):
    times = list(np.cumsum(gaps))
    assert decode_rate(len(times), times) == pytest.approx((len(times) - 1) / (times[-1] - times[0]))


@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), min_size=1, max_size=50),
       st.sampled_from([50, 95]))
def test_percentile_matches_numpy(values, pct):
    assert percentile(values, pct) == pytest.approx(float(np.percentile(values, pct)), abs=1e-9)
