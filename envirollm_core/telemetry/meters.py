"""One factory from `--energy-from` to the energy meter a batch measures with.

`local` (or nothing) is this machine's shared sampler; `prometheus://HOST:PORT`
is a remote machine's counters in Prometheus, picked by `--energy-selector`.
Both are an `EnergyMeter` (`telemetry.measurement`): the interface the runner,
the load sweep and the judge measure with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from envirollm_core.errors import UsageError
from envirollm_core.telemetry.measurement import EnergyMeter
from envirollm_core.telemetry.prometheus import PrometheusMeter, parse_target

LOCAL = "local"


def check_energy_from(energy_from: str | None, selector: str | None) -> None:
    """A one-line UsageError for a value no meter can be made from (checked before any server is asked)."""
    if energy_from is None or energy_from.strip().lower() in ("", LOCAL):
        if selector and selector.strip():
            raise UsageError("--energy-selector picks series in Prometheus: give it with --energy-from prometheus://HOST:PORT")
        return
    parse_target(energy_from, selector)


def make_energy_meter(energy_from: str | None, selector: str | None = None) -> EnergyMeter:
    """The meter for `energy_from`: None or 'local' is this machine's shared sampler; a prometheus:// URL a new
    `PrometheusMeter`, which its caller closes."""
    check_energy_from(energy_from, selector)
    if energy_from is None or energy_from.strip().lower() in ("", LOCAL):
        from envirollm_core.telemetry.sampler import get_sampler

        return get_sampler()
    return PrometheusMeter(parse_target(energy_from, selector))


@contextmanager
def energy_meter(energy_from: str | None, selector: str | None = None) -> Iterator[EnergyMeter]:
    """`make_energy_meter`, closed on leaving when it is remote (the local sampler is shared by the process)."""
    meter = make_energy_meter(energy_from, selector)
    try:
        yield meter
    finally:
        if isinstance(meter, PrometheusMeter):
            meter.close()
