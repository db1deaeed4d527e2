"""Live CPU, RAM, GPU and power from the one shared sampler, and the LLM servers running now."""

import streamlit as st

from envirollm_core import charts
from envirollm_core.errors import EnviroLLMError
from envirollm_core.figures import format_figure
from envirollm_core.settings import load_settings
from envirollm_core.telemetry.prometheus import PrometheusMeter, parse_target
from envirollm_core.telemetry.processes import detect_llm_servers
from envirollm_core.telemetry.sampler import get_sampler
from envirollm_core.views.formats import plain, text_table
from envirollm_core.views.monitor import PANELS, monitor_frame, power_now, remote_power_frame, servers_frame

st.title("Monitor")
st.caption("Live readings from EnviroLLM's sampler (the same one that measures benchmarks); nothing is stored here.")

sampler = get_sampler()
for note in sampler.notes:  # the sampler's notes say it once when there is no GPU reading
    st.info(plain(note))
window_s = st.segmented_control(
    "Window", [30, 60, 300], default=60, format_func=lambda s: f"{s} s" if s < 60 else f"{s // 60} min",
) or 60


@st.fragment(run_every=1)
def live_readings(window_s: int) -> None:
    samples = sampler.recent(window_s)
    components = sampler.components()
    if sampler.last_error:
        st.warning(plain(f"The sampler's last reading failed: {sampler.last_error}"))
    for column, reading in zip(st.columns(max(len(components), 1)), power_now(samples, components)):
        watts = f"{format_figure(reading.watts, 'W')} W" if reading.watts is not None else "not measured"
        column.metric(f"{reading.component} power", watts, help=reading.note)
        column.caption(f"source: {reading.source}")
    frame = monitor_frame(samples, components)
    panels = frame.partition_by("panel", as_dict=True)
    shown = [(title, unit) for title, unit in PANELS.items() if (title,) in panels]
    for pair in (shown[i:i + 2] for i in range(0, len(shown), 2)):
        for column, (title, unit) in zip(st.columns(2), pair):
            column.altair_chart(charts.timeline(panels[(title,)], title=title, unit=unit))
    if not shown:
        st.caption("No reading yet: the sampler has just started.")


live_readings(window_s)


@st.cache_resource
def remote_meter(energy_from: str, selector: str | None) -> PrometheusMeter:
    return PrometheusMeter(parse_target(energy_from, selector))


@st.fragment(run_every=5)
def remote_power(meter: PrometheusMeter, window_s: int) -> None:
    try:
        frame = remote_power_frame(meter.recent_power(window_s))
    except EnviroLLMError as exc:
        st.warning(plain(str(exc)))
        return
    if frame.is_empty():
        st.info(plain(f"Prometheus at {meter.description} has no energy series to show yet (DCGM exporter, "
                      "node_exporter RAPL or Kepler); check the selector in Settings."))
        return
    st.altair_chart(charts.timeline(frame, title="Remote power", unit="W"))


try:
    saved = load_settings()
except EnviroLLMError:
    saved = None
if saved is not None and saved.energy_from:
    st.header("Remote machine (from Prometheus)")
    meter = remote_meter(saved.energy_from, saved.energy_selector)
    st.caption(plain(f"{meter.description}: each counter's rise between Prometheus's stored samples over the "
                     "scrape interval, as the benchmarks read it (Settings → default energy source)."))
    remote_power(meter, window_s)

st.header("LLM servers running now")


@st.fragment(run_every=5)
def llm_servers() -> None:
    servers = detect_llm_servers()
    if not servers:
        st.info("No LLM server is running (Ollama, LM Studio, llama.cpp, vLLM, KoboldCPP, text-generation-webui...).")
        return
    st.table(text_table(servers_frame(servers)), hide_index=True)


llm_servers()
