"""One factory from `--energy-from` to the energy meter a batch measures with.

`local` (or nothing) is this machine's shared sampler; `prometheus://HOST:PORT`
is a remote machine's counters in Prometheus, picked by `--energy-selector`.
Both have the window interface the runner uses (`begin_window`, `end_window ->
Measurement`, `measure_idle`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from envirollm_core.errors import UsageError

LOCAL = "local"


def check_energy_from(energy_from: str | None, selector: str | None) -> None:
    """A one-line UsageError for a value no meter can be made from (checked before any server is asked)."""
    from envirollm_core.telemetry.prometheus import parse_target

    if energy_from is None or energy_from.strip().lower() in ("", LOCAL):
        if selector and selector.strip():
            raise UsageError("--energy-selector picks series in Prometheus: give it with --energy-from prometheus://HOST:PORT")
        return
    parse_target(energy_from, selector)


@contextmanager
def energy_meter(energy_from: str | None, selector: str | None = None) -> Iterator[Any]:
    """The meter for `energy_from` (None or 'local': this machine's sampler), closed on leaving when remote."""
    check_energy_from(energy_from, selector)
    if energy_from is None or energy_from.strip().lower() in ("", LOCAL):
        from envirollm_core.telemetry.sampler import get_sampler

        yield get_sampler()
        return
    from envirollm_core.telemetry.prometheus import PrometheusMeter, parse_target

    with PrometheusMeter(parse_target(energy_from, selector)) as meter:
        yield meter
