"""One stream's energy split at its first token: before it, prefill (the prompt's processing); after it, decode.

The run's energy (from the counters, the best reading) is shared out in the
proportion the sampled power trace gives to each side of the first token:
the trace holds CPU and GPU power every sampling interval, joined by
straight lines (held flat before the first sample and after the last). Where
exactly the power changed between the two samples around the first token is
not seen, so either part may be off by up to the energy of that one sampling
gap at the higher of its two powers: that is the split's uncertainty.

Only for runs sent one at a time: when streams overlap (a load sweep), one
request's prefill runs while others decode, and the machine's power cannot
be told apart per request or per phase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envirollm_core.records import TracePoint
from envirollm_core.units import energy_wh as energy_wh_of


@dataclass(frozen=True)
class PhaseSplit:
    prefill_energy_wh: float
    decode_energy_wh: float
    uncertainty_wh: float  # either part may be off by this much


def split_at_first_token(
    trace: Sequence[TracePoint], energy_wh: float | None, duration_s: float, first_token_s: float | None
) -> PhaseSplit | None:
    """The split of `energy_wh` at `first_token_s` (seconds from the window's start); None when the trace
    has no power to weigh the two sides by, or the run has no first token or energy."""
    points = [(p.t_s, power) for p in trace if (power := _power_w(p)) is not None]
    if energy_wh is None or first_token_s is None or not points or not 0 <= first_token_s <= duration_s:
        return None
    points = [(0.0, points[0][1]), *points, (max(duration_s, points[-1][0]), points[-1][1])]
    before_j, after_j = _integral_j(points, 0.0, first_token_s), _integral_j(points, first_token_s, duration_s)
    if before_j + after_j <= 0:
        return None
    prefill_wh = energy_wh * before_j / (before_j + after_j)
    lower = max((p for p in points if p[0] <= first_token_s), key=lambda p: p[0])
    upper = min((p for p in points if p[0] >= first_token_s), key=lambda p: p[0])
    gap_s = max(upper[0] - lower[0], _trace_step_s(points))
    uncertainty_wh = min(energy_wh_of(max(lower[1], upper[1]), gap_s), energy_wh)
    return PhaseSplit(prefill_wh, energy_wh - prefill_wh, uncertainty_wh)


def _power_w(point: TracePoint) -> float | None:
    known = [p for p in (point.cpu_power_w, point.gpu_power_w) if p is not None]
    return sum(known) if known else None


def _trace_step_s(points: list[tuple[float, float]]) -> float:
    """The sampling step: the first token may fall between two samples even where they sit at the edges."""
    gaps = sorted(b[0] - a[0] for a, b in zip(points, points[1:]) if b[0] > a[0])
    return gaps[len(gaps) // 2] if gaps else 0.0


def _integral_j(points: list[tuple[float, float]], start_s: float, end_s: float) -> float:
    """The integral of the piecewise-linear power over [start_s, end_s]."""
    total = 0.0
    for (t0, p0), (t1, p1) in zip(points, points[1:]):
        lo, hi = max(t0, start_s), min(t1, end_s)
        if hi <= lo or t1 <= t0:
            continue
        at = lambda t: p0 + (p1 - p0) * (t - t0) / (t1 - t0)  # noqa: E731
        total += (at(lo) + at(hi)) / 2 * (hi - lo)
    return total
