"""Energy of a remote machine, read from the counters its exporters publish to Prometheus.

When the LLM server runs on another machine, the local sampler measures the
wrong one. The machines that serve LLMs already publish their energy counters
to Prometheus: NVIDIA's DCGM exporter (`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`,
mJ per GPU; `DCGM_FI_DEV_POWER_USAGE`, W), node_exporter's RAPL collector
(`node_rapl_package_joules_total`, `node_rapl_dram_joules_total`) and Kepler
(`kepler_node_*_joules_total`, `kepler_container_joules_total`).

`PrometheusMeter` is an `EnergyMeter` (`telemetry.measurement`: `begin_window` /
`end_window -> Measurement` / `measure_idle`), so the runner uses either one.
A window's energy is each counter's rise between the window's edges, read from
the raw samples Prometheus stored (an instant query of a range selector gives
them unchanged), never `rate()`'s extrapolation: the counter is linearly
interpolated between the two raw samples that bracket each edge, counter resets
are handled as Prometheus does (a drop means the counter restarted from 0), and
the true counter value at an edge lies between those two samples, which bounds
the error at each edge by about one scrape interval x power (stored as
`energy_uncertainty_wh`). A window shorter than four scrape intervals is
`pending` here: the runner measures its model's runs together and shares that
energy by completion tokens (`settle`).

A Prometheus that is down, slow or lacks the series gives energy `unmeasured`
with the reason, never an exception out of `end_window`.
"""

from __future__ import annotations

import math
import re
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.figures import format_figure
from envirollm_core.records import ComponentEnergy, EnergySource
from envirollm_core.telemetry.measurement import ComponentInfo, IdleBaseline, Measurement, component_kind
from envirollm_core.units import average_power_w, j_to_wh

SCHEMES = {"prometheus": "http", "prometheus+http": "http", "prometheus+https": "https"}
MIN_SCRAPES_PER_WINDOW = 4  # a shorter window is measured with its model's other runs and shared by tokens
UNKNOWN_INTERVAL_LOOKBACK_S = 60.0  # how far before a window to look for its first edge's sample
WAIT_PAST_END_SCRAPES = 2.5  # how long to wait for the first sample after a window's end, in scrape intervals
MAX_WAIT_PAST_END_S = 60.0
DEFAULT_TIMEOUT_S = 5.0
REMOTE = "remote"  # the component named when nothing could be read at all

_MATCHER = r'\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
_SELECTOR = re.compile(rf"^(?:{_MATCHER}(?:,{_MATCHER})*,?\s*)?$")


# --- where to read from ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PrometheusTarget:
    """A Prometheus server and the selector of the serving machine's series. The credentials of
    `prometheus://user:password@host:9090` live only here, for the requests: `display` and every
    stored or shown text leave them out."""

    base_url: str  # http(s)://host:port[/path], without credentials
    selector: str = ""  # label matchers without braces: instance="gpu-box:9400"
    auth: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = "prometheus" if parts.scheme == "http" else "prometheus+https"
        where = urlunsplit((scheme, parts.netloc, parts.path, "", ""))
        return f"{where} {{{self.selector}}}" if self.selector else where


def is_prometheus_url(value: str | None) -> bool:
    return bool(value) and value.strip().split("://", 1)[0].lower() in SCHEMES  # type: ignore[union-attr]


def strip_credentials(url: str) -> str:
    """The URL without any user:password@ part (what may be stored or shown)."""
    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def parse_target(url: str, selector: str | None = None) -> PrometheusTarget:
    """`prometheus://HOST:9090` (or `prometheus+https://user:pass@HOST/prom`) and a selector -> a target;
    a one-line UsageError for anything else."""
    text = url.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in SCHEMES:
        raise UsageError(f"--energy-from must be 'local' or prometheus://HOST:PORT, not {strip_credentials(text)!r}")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"the port of {strip_credentials(text)!r} is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise UsageError(f"{strip_credentials(text)!r} names no host: give prometheus://HOST:9090")
    if parts.query or parts.fragment:
        raise UsageError(f"{strip_credentials(text)!r}: a Prometheus URL takes no query or fragment")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port is not None else host
    base_url = urlunsplit((SCHEMES[scheme], netloc, parts.path.rstrip("/"), "", ""))
    auth = (parts.username or "", parts.password or "") if parts.username is not None else None
    return PrometheusTarget(base_url, _normalize_selector(selector or ""), auth)


def _normalize_selector(selector: str) -> str:
    text = selector.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if not _SELECTOR.match(text):
        raise UsageError(
            f"--energy-selector {selector!r} is not a list of Prometheus label matchers, e.g. instance=\"gpu-box:9400\""
        )
    return text.rstrip(", ")


# --- the counter families -------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One known metric: how to name its component, its unit, and whether it is a counter or a gauge."""

    metric: str
    source: EnergySource
    kind: Literal["counter", "gauge"]
    joules_per_unit: float  # counters: J per counter unit; gauges: the unit is W
    component: Callable[[dict[str, str]], str]
    what: str

    @property
    def node_level(self) -> bool:
        return not self.metric.startswith("kepler_container")


def _label(name: str, default: str = "0") -> Callable[[dict[str, str]], str]:
    return lambda labels: labels.get(name) or default


FAMILIES: tuple[Family, ...] = (
    Family("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "prometheus:dcgm", "counter", 1e-3,
           lambda labels: f"gpu:{_label('gpu')(labels)}", "DCGM GPU energy counter"),
    Family("DCGM_FI_DEV_POWER_USAGE", "prometheus:dcgm", "gauge", 1.0,
           lambda labels: f"gpu:{_label('gpu')(labels)}", "DCGM power gauge integrated (this GPU has no energy counter)"),
    Family("node_rapl_package_joules_total", "prometheus:rapl", "counter", 1.0,
           lambda labels: f"cpu:package-{_label('index')(labels)}", "node_exporter RAPL package counter"),
    Family("node_rapl_dram_joules_total", "prometheus:rapl", "counter", 1.0,
           lambda labels: f"dram:{_label('index')(labels)}", "node_exporter RAPL DRAM counter"),
    Family("kepler_node_package_joules_total", "prometheus:kepler", "counter", 1.0,
           lambda labels: f"cpu:package-{_label('package')(labels)}", "Kepler node package counter"),
    Family("kepler_node_dram_joules_total", "prometheus:kepler", "counter", 1.0,
           lambda labels: f"dram:{_label('package')(labels)}", "Kepler node DRAM counter"),
    Family("kepler_container_joules_total", "prometheus:kepler", "counter", 1.0,
           lambda labels: f"container:{_label('container_name', 'unnamed')(labels)}", "Kepler container counter"),
)
FAMILY_BY_METRIC = {family.metric: family for family in FAMILIES}
_PREFERENCE = {"prometheus:dcgm": 0, "prometheus:rapl": 1, "prometheus:kepler": 2}


@dataclass(frozen=True)
class Series:
    """The raw samples of one series: unix times (s) and values, oldest first."""

    family: Family
    labels: dict[str, str]
    times: tuple[float, ...]
    values: tuple[float, ...]

    @property
    def component(self) -> str:
        return self.family.component(self.labels)


def choose_series(series: Sequence[Series]) -> list[Series]:
    """The series that measure the machine without counting any energy twice.

    Kepler container counters are chosen alone when the selector matches any (the user asked for a
    container; the node's counters hold every other container too). Otherwise each component is measured
    by its best family: DCGM for a GPU (its energy counter before its power gauge), node_exporter's RAPL
    before Kepler's node counters for CPU and DRAM. Series of one family and component (Kepler's `mode`
    dynamic and idle) are summed."""
    containers = [s for s in series if not s.family.node_level]
    if containers:
        return containers
    best: dict[str, tuple[int, int]] = {}
    for s in series:
        rank = (_PREFERENCE[s.family.source], s.family.kind == "gauge")
        best[s.component] = min(best.get(s.component, rank), rank)
    return [s for s in series if (_PREFERENCE[s.family.source], s.family.kind == "gauge") == best[s.component]]


# --- a window's energy from raw samples -----------------------------------------------------------


@dataclass(frozen=True)
class SeriesEnergy:
    energy_j: float | None
    uncertainty_j: float | None
    resets: int = 0
    problem: str | None = None


def _bracket(times: Sequence[float], t: float) -> int | None:
    """The index i with times[i] <= t <= times[i + 1]; None when t is outside the samples."""
    if len(times) < 2 or t < times[0] or t > times[-1]:
        return None
    lo, hi = 0, len(times) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if times[mid] <= t:
            lo = mid
        else:
            hi = mid
    return lo


def counter_energy(series: Series, start: float, end: float) -> SeriesEnergy:
    """A counter's rise over [start, end] in joules, interpolated between the raw samples that bracket each
    edge, with resets handled, and the bound of its error: at each edge the true value lies between the two
    bracketing samples; across a reset, the interval's rise is taken at the power of the interval before (what the counter held
before restarting is lost), and that whole interval's energy is counted as uncertain."""
    times, values = series.times, series.values
    first, last = _bracket(times, start), _bracket(times, end)
    if first is None or last is None:
        return SeriesEnergy(None, None, problem=_missing_edge(times, start, end))
    cumulative = [values[0]]
    reset_steps = set()
    for i in range(1, len(values)):
        rise = values[i] - values[i - 1]
        if rise < 0:  # the exporter restarted: its counter began again from 0 somewhere in this interval
            rise = values[i]
            if i >= 2 and i - 1 not in reset_steps and times[i - 1] > times[i - 2]:
                # what it counted before restarting is lost: take the power of the interval before
                power = (cumulative[i - 1] - cumulative[i - 2]) / (times[i - 1] - times[i - 2])
                rise = max(rise, power * (times[i] - times[i - 1]))
            reset_steps.add(i)
        cumulative.append(cumulative[-1] + rise)

    def at(t: float, i: int) -> tuple[float, float]:
        span = times[i + 1] - times[i]
        step = cumulative[i + 1] - cumulative[i]
        share = (t - times[i]) / span if span > 0 else 1.0
        bound = step if i + 1 in reset_steps else max(share, 1 - share) * step
        return cumulative[i] + share * step, bound

    value_start, bound_start = at(start, first)
    value_end, bound_end = at(end, last)
    inner = [i for i in reset_steps if first + 1 < i <= last]
    lost = sum(cumulative[i] - cumulative[i - 1] for i in inner)  # about one interval's energy per reset
    resets = sum(first + 1 <= i <= last + 1 for i in reset_steps)
    scale = series.family.joules_per_unit
    return SeriesEnergy((value_end - value_start) * scale, (bound_start + bound_end + lost) * scale, resets)


def gauge_energy(series: Series, start: float, end: float) -> SeriesEnergy:
    """A power gauge integrated (trapezoid) over [start, end] from its raw samples, interpolated at the edges;
    the bound takes a step anywhere between two samples: half their difference x their interval."""
    times, values = series.times, series.values
    first, last = _bracket(times, start), _bracket(times, end)
    if first is None or last is None:
        return SeriesEnergy(None, None, problem=_missing_edge(times, start, end))

    def power_at(t: float, i: int) -> float:
        span = times[i + 1] - times[i]
        share = (t - times[i]) / span if span > 0 else 1.0
        return values[i] + share * (values[i + 1] - values[i])

    points = [(start, power_at(start, first))]
    points += [(times[i], values[i]) for i in range(first + 1, last + 1)]
    points.append((end, power_at(end, last)))
    energy = sum((t2 - t1) * (p1 + p2) / 2 for (t1, p1), (t2, p2) in zip(points, points[1:]))
    bound = sum((times[i + 1] - times[i]) * abs(values[i + 1] - values[i]) / 2 for i in range(first, last + 1))
    return SeriesEnergy(energy * series.family.joules_per_unit, bound * series.family.joules_per_unit)


def _missing_edge(times: Sequence[float], start: float, end: float) -> str:
    if not times:
        return "the series has no sample in the window"
    if times[-1] < end:
        return f"no sample after the window's end (the newest is {end - times[-1]:.1f} s before it)"
    return f"no sample before the window's start (the oldest is {times[0] - start:.1f} s after it)"


def series_energy(series: Series, start: float, end: float) -> SeriesEnergy:
    return (counter_energy if series.family.kind == "counter" else gauge_energy)(series, start, end)


def scrape_interval_s(series: Sequence[Series]) -> float | None:
    """The median gap between consecutive raw samples over every series."""
    gaps = [b - a for s in series for a, b in zip(s.times, s.times[1:]) if b > a]
    return statistics.median(gaps) if gaps else None


# --- talking to Prometheus ------------------------------------------------------------------------


class PrometheusError(EnviroLLMError):
    """Prometheus could not be asked, or did not answer as documented."""


class PrometheusClient:
    """The two calls the meter needs from Prometheus's HTTP API (`/api/v1/query`)."""

    def __init__(self, target: PrometheusTarget, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.target = target
        self._http = httpx.Client(
            base_url=target.base_url, auth=target.auth, timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
        )

    def close(self) -> None:
        self._http.close()

    def raw_samples(self, lookback_s: float, at_unix: float | None = None) -> list[Series]:
        """Every known family's series matching the selector, with their raw samples over the last
        `lookback_s` before `at_unix` (now by default)."""
        names = "|".join(family.metric for family in FAMILIES)
        matchers = f'__name__=~"{names}"' + (f",{self.target.selector}" if self.target.selector else "")
        query = f"{{{matchers}}}[{max(1, math.ceil(lookback_s))}s]"
        params = {"query": query, "time": f"{at_unix if at_unix is not None else time.time():.3f}"}
        data = self._get("/api/v1/query", params)
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"Prometheus at {self.target.display} answered a {data.get('resultType')!r}, not a matrix")
        try:
            return [series for item in data.get("result", []) if (series := _series(item)) is not None]
        except (TypeError, ValueError, AttributeError):
            raise PrometheusError(f"Prometheus at {self.target.display} answered a matrix that is not as documented") from None

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        where = self.target.display
        try:
            response = self._http.get(path, params=params)
        except httpx.TimeoutException:
            raise PrometheusError(f"Prometheus at {where} did not answer within {self._http.timeout.read:g} s") from None
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus at {where} cannot be reached ({type(exc).__name__}: {exc})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("data", {}), dict):
            raise PrometheusError(f"Prometheus at {where} answered HTTP {response.status_code} without its JSON: is it Prometheus?")
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"Prometheus at {where} refused the query (HTTP {response.status_code}): {body.get('error', '')}")
        return body.get("data", {})


def _series(item: dict[str, Any]) -> Series | None:
    """One series of a matrix answer, None when it is no known family or holds no finite sample."""
    labels = dict(item.get("metric", {}))
    family = FAMILY_BY_METRIC.get(labels.pop("__name__", ""))
    points = [(float(t), float(v)) for t, v in item.get("values", [])]
    points = [(t, v) for t, v in points if math.isfinite(v)]
    if family is None or not points:
        return None
    return Series(family, labels, tuple(t for t, _ in points), tuple(v for _, v in points))


# --- the meter ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemotePower:
    """A remote component's power at `t_s` seconds before now (0 = now)."""

    component: str
    source: EnergySource
    t_s: float
    watts: float


class PrometheusMeter:
    """The sampler's window interface over a remote machine's counters in Prometheus; thread-safe."""

    def __init__(self, target: PrometheusTarget, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_wait_s: float = MAX_WAIT_PAST_END_S) -> None:
        self.target = target
        self.description = target.display
        self.notes: tuple[str, ...] = ()
        self.last_error: str | None = None
        self._client = PrometheusClient(target, timeout_s)
        self._max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._windows: dict[str, float] = {}
        self._interval_s: float | None = None
        self._components: list[ComponentInfo] = []

    # the window interface the runner uses

    def begin_window(self, name: str, pids: Sequence[int] = ()) -> None:
        """Open a window now; `pids` are ignored: the server's processes are on another machine."""
        with self._lock:
            if name in self._windows:
                raise EnviroLLMError(f"an energy window named {name!r} is already open")
            self._windows[name] = time.time()

    def end_window(self, name: str) -> Measurement:
        with self._lock:
            start = self._windows.pop(name, None)
        if start is None:
            raise EnviroLLMError(f"no energy window named {name!r} is open")
        end = time.time()
        interval = self._interval_s
        if interval is not None and end - start < MIN_SCRAPES_PER_WINDOW * interval:
            return self._pending(name, start, end, interval)
        return self.measure_span(name, start, end)

    def measure_idle(self, duration_s: float) -> IdleBaseline:
        """Idle power per component over the last `duration_s` (after sleeping that long), reaching back to
        four scrape intervals when that is longer: the machine was idle before the batch began."""
        if not duration_s > 0:
            raise UsageError(f"the idle measurement needs a duration above 0 s, not {duration_s}")
        time.sleep(duration_s)
        end = time.time()
        self._learn_interval(end)
        span = max(duration_s, MIN_SCRAPES_PER_WINDOW * (self._interval_s or 0))
        return IdleBaseline.from_measurement(self.measure_span("idle-baseline", end - span, end))

    def settle(self, pending: Sequence[Measurement], tokens: Sequence[int | None]) -> list[Measurement]:
        """Windows too short to measure alone, measured together from the first one's start to the last
        one's end, and that energy shared by completion tokens (a window without tokens gets none)."""
        start = min(m.start_unix_time for m in pending)
        end = max(m.start_unix_time + m.duration_s for m in pending)
        whole = self.measure_span("batch", start, end)
        total_tokens = sum(t or 0 for t in tokens)
        shared = []
        for measurement, count in zip(pending, tokens):
            share = (count or 0) / total_tokens if total_tokens else None
            why = (f"measured at batch level: {len(pending)} runs' {end - start:.1f} s together (each shorter than "
                   f"{MIN_SCRAPES_PER_WINDOW} scrape intervals), shared by completion tokens ({count or 0} of {total_tokens})")
            shared.append(_scaled(whole, share, why, measurement))
        return shared

    def measure_span(self, name: str, start: float, end: float) -> Measurement:
        """Energy per component over [start, end] (unix s); unmeasured with the reason when it cannot be read."""
        try:
            series = self._samples_past(start, end)
        except PrometheusError as exc:
            self.last_error = str(exc)
            return self._unmeasured(name, start, end, str(exc))
        if not series:
            self.last_error = None
            return self._unmeasured(name, start, end, self._none_found())
        self.last_error = None
        chosen = choose_series(series)
        self._interval_s = scrape_interval_s(chosen) or self._interval_s
        by_component: dict[str, list[Series]] = {}
        for s in chosen:
            by_component.setdefault(s.component, []).append(s)
        components, uncertainty_j = [], 0.0
        for component, members in sorted(by_component.items()):
            results = [series_energy(s, start, end) for s in members]
            family = members[0].family
            problem = next((r.problem for r in results if r.problem), None)
            if problem:
                components.append(ComponentEnergy(component, None, "unmeasured", f"{family.what} ({family.metric}): {problem}"))
                continue
            energy_j = sum(r.energy_j for r in results)  # type: ignore[misc]
            uncertainty_j += sum(r.uncertainty_j for r in results)  # type: ignore[misc]
            resets = sum(r.resets for r in results)
            note = (f"{family.what} ({family.metric}), scraped every {self._interval_s:g} s: "
                    f"± {format_figure(sum(r.uncertainty_j for r in results), 'J')} J at the window's edges")  # type: ignore[misc]
            if resets:
                note += f"; {resets} counter reset(s) in the window, handled"
            components.append(ComponentEnergy(component, j_to_wh(max(energy_j, 0.0)), family.source, note))
        self._components = [ComponentInfo(c.component, component_kind(c.component), c.source, c.note) for c in components]
        return _measurement(name, start, end, tuple(components), j_to_wh(uncertainty_j))

    # for the Monitor page

    def components(self) -> list[ComponentInfo]:
        return list(self._components)

    def recent_power(self, seconds: float) -> list[RemotePower]:
        """Each component's power over the last `seconds`: a counter's rise between consecutive raw samples
        over their interval, a gauge as stored. Raises PrometheusError."""
        now = time.time()
        summed: dict[tuple[str, EnergySource, float], float] = {}
        for s in choose_series(self._client.raw_samples(seconds, now)):
            points = list(zip(s.times, s.values))
            if s.family.kind == "gauge":
                powers = [(t, v) for t, v in points]
            else:
                powers = [(t2, ((v2 - v1) if v2 >= v1 else v2) * s.family.joules_per_unit / (t2 - t1))
                          for (t1, v1), (t2, v2) in zip(points, points[1:]) if t2 > t1]
            for t, watts in powers:  # Kepler's dynamic and idle series of one component add up
                key = (s.component, s.family.source, round(t - now, 1))
                summed[key] = summed.get(key, 0.0) + watts
        return [RemotePower(c, source, t, w) for (c, source, t), w in sorted(summed.items())]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusMeter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # internals

    def _learn_interval(self, now: float) -> None:
        if self._interval_s is None:
            try:
                self._interval_s = scrape_interval_s(choose_series(self._client.raw_samples(UNKNOWN_INTERVAL_LOOKBACK_S, now)))
            except PrometheusError as exc:
                self.last_error = str(exc)

    def _samples_past(self, start: float, end: float) -> list[Series]:
        """The raw samples from before `start` to the first scrape after `end`, waiting for that scrape."""
        lookback_margin = 3 * self._interval_s + 5 if self._interval_s else UNKNOWN_INTERVAL_LOOKBACK_S
        wait_s = min(WAIT_PAST_END_SCRAPES * self._interval_s + 1 if self._interval_s else 10.0, self._max_wait_s)
        deadline = time.time() + wait_s
        # a series that ended well before the window (a GPU gone, an old label set) is no part of it
        fresh_since = start - (2 * self._interval_s + 1 if self._interval_s else lookback_margin)
        while True:
            now = time.time()
            series = [s for s in self._client.raw_samples(now - start + lookback_margin, now) if s.times[-1] >= fresh_since]
            if not series or all(s.times[-1] >= end for s in series) or now >= deadline:
                return series
            time.sleep(min(0.25, max(deadline - now, 0.01)))

    def _none_found(self) -> str:
        selector = f" matching {{{self.target.selector}}}" if self.target.selector else ""
        return (f"Prometheus at {self.target.display} has no energy series{selector}: none of "
                f"{', '.join(f.metric for f in FAMILIES)}; check --energy-selector and that the exporter is scraped")

    def _unmeasured(self, name: str, start: float, end: float, reason: str) -> Measurement:
        known = [info.name for info in self._components] or [REMOTE]
        return _measurement(name, start, end, tuple(ComponentEnergy(c, None, "unmeasured", reason) for c in known), None)

    def _pending(self, name: str, start: float, end: float, interval: float) -> Measurement:
        why = (f"window of {end - start:.2f} s is shorter than {MIN_SCRAPES_PER_WINDOW} scrape intervals "
               f"({interval:g} s): to be measured at batch level and shared by tokens")
        known = [info.name for info in self._components] or [REMOTE]
        parts = tuple(ComponentEnergy(c, None, "unmeasured", why) for c in known)
        return replace(_measurement(name, start, end, parts, None), pending=True)


def _measurement(name: str, start: float, end: float, components: tuple[ComponentEnergy, ...],
                 uncertainty_wh: float | None) -> Measurement:
    known = [c.energy_wh for c in components if c.energy_wh is not None]
    energy_wh = sum(known) if known else None
    duration_s = end - start
    return Measurement(
        name=name, start_unix_time=start, duration_s=duration_s, components=components, energy_wh=energy_wh,
        avg_power_w=average_power_w(energy_wh, duration_s),
        peak_power_w=None, cpu_percent_avg=None, cpu_percent_peak=None, ram_used_mb_avg=None, ram_used_mb_peak=None,
        gpu_util_percent_avg=None, gpu_util_percent_peak=None, gpu_mem_used_mb_avg=None, gpu_mem_used_mb_peak=None,
        gpu_temp_c_avg=None, gpu_temp_c_peak=None, processes=(), trace=(), sample_count=0,
        energy_uncertainty_wh=uncertainty_wh if energy_wh is not None else None,
    )


def _scaled(whole: Measurement, share: float | None, why: str, own: Measurement) -> Measurement:
    """`whole`'s energy times `share` (None: unmeasured), over `own`'s window, each note saying how."""
    def part(value: float | None) -> float | None:
        return value * share if value is not None and share is not None else None

    components = tuple(
        ComponentEnergy(c.component, part(c.energy_wh), c.source if part(c.energy_wh) is not None else "unmeasured",
                        f"{c.note}; {why}" if c.energy_wh is not None else c.note)
        for c in whole.components
    )
    energy_wh = part(whole.energy_wh)
    # The span's duration shared the same way, so net energy (gross - idle power x duration) is shared alike.
    return replace(whole, name=own.name, start_unix_time=own.start_unix_time, components=components,
                   energy_wh=energy_wh, duration_s=whole.duration_s * share if share else own.duration_s,
                   energy_uncertainty_wh=part(whole.energy_uncertainty_wh))
