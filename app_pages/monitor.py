"""Live CPU, RAM, GPU and power from the one shared sampler, and the LLM servers running now."""

import streamlit as st

from envirollm_core import charts
from envirollm_core.telemetry.processes import detect_llm_servers
from envirollm_core.telemetry.sampler import get_sampler
from envirollm_core.views import PANELS, monitor_frame, plain, power_now, servers_frame

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
        watts = f"{reading.watts:.1f} W" if reading.watts is not None else "not measured"
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

st.header("LLM servers running now")


@st.fragment(run_every=5)
def llm_servers() -> None:
    servers = detect_llm_servers()
    if not servers:
        st.info("No LLM server is running (Ollama, LM Studio, llama.cpp, vLLM, KoboldCPP, text-generation-webui...).")
        return
    st.dataframe(
        servers_frame(servers), hide_index=True, placeholder="",
        column_config={
            "CPU (% of one core)": st.column_config.NumberColumn(format="%.0f"),
            "RSS (MB)": st.column_config.NumberColumn(format="%.0f"),
            "GPU memory (MB)": st.column_config.NumberColumn(format="%.0f"),
        },
    )


llm_servers()
