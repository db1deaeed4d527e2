"""What fits this machine, which configuration to pick per prompt or task, and what a month of use would cost."""

from pathlib import Path

import streamlit as st

from app_pages.blocks import analysis_frame, open_store, recommendations as stored_recommendations
from envirollm_core.analysis import hardware_fit, make_tariff
from envirollm_core.analysis.hardware import DEFAULT_CONTEXT_TOKENS, detected_memory_gb, largest_fits, usable
from envirollm_core.analysis.speed import (
    DEFAULT_MIN_TPS,
    check_against_runs,
    fit_verdict,
    memory_bandwidth,
    this_gpu_bandwidth_gbps,
    with_speeds,
)
from envirollm_core.analysis.recommend import QUALITY_FLOOR, GroupRecommendation
from envirollm_core.errors import EnviroLLMError
from envirollm_core.figures import format_figure
from envirollm_core.settings import Settings, load_settings
from envirollm_core.store import Store
from envirollm_core.views.formats import plain, plain_formats, text_table
from envirollm_core.views.recommendations import config_stats, energy_caption, fits_frame, monthly_table, picks_frame



@st.cache_data(ttl=60, show_spinner=False)
def energy_sources(db_path: str) -> set[str]:
    """Where the stored energy figures came from; read once a minute at most (a scan of every run's components)."""
    return Store(Path(db_path)).energy_sources()


MAX_GROUPS_LISTED = 12
PLACEMENT_TITLES = {"gpu": "Largest on the GPU alone", "gpu+cpu": "Largest split GPU + CPU", "cpu": "Largest on the CPU"}

st.title("Recommendations")

st.header("What fits this machine")
detected_ram_gb, detected_vram_gb = detected_memory_gb()
ram_col, vram_col, context_col, speed_col = st.columns(4)
ram_gb = ram_col.number_input("RAM (GB)", min_value=0.0, max_value=4096.0, value=round(detected_ram_gb, 1))
vram_gb = vram_col.number_input("GPU memory (GB, largest GPU)", min_value=0.0, max_value=1024.0,
                                value=round(detected_vram_gb or 0.0, 1),
                                help="Detected through NVML; 0 when no NVIDIA GPU (or its memory) was detected.")
context_tokens = context_col.number_input("Context (tokens)", min_value=256, max_value=1_000_000,
                                          value=DEFAULT_CONTEXT_TOKENS, step=1024)
min_tps = speed_col.number_input("Usable from (tokens/s)", min_value=0.0, max_value=10_000.0,
                                 value=DEFAULT_MIN_TPS, help="The slowest estimated decode rate that counts as usable.")
probe = memory_bandwidth()
gpu_gbps = this_gpu_bandwidth_gbps() if vram_gb else None
try:
    fits = with_speeds(hardware_fit(ram_gb, vram_gb, context_tokens=int(context_tokens)),
                       ram_gbps=probe.gbps, gpu_gbps=gpu_gbps, vram_gb=vram_gb)
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    fits = []
best = largest_fits(fits, min_tps)
for column, placement in zip(st.columns(len(PLACEMENT_TITLES)), PLACEMENT_TITLES):
    estimate = best.get(placement)
    column.metric(PLACEMENT_TITLES[placement], f"{estimate.model} {estimate.quantization}" if estimate else "none",
                  help=(f"{fit_verdict(estimate, min_tps)}; {format_figure(estimate.total_gb, 'GB')} GB with a "
                        f"{estimate.context_tokens}-token context") if estimate else None)
    if estimate:
        column.caption(fit_verdict(estimate, min_tps))
only_fitting = st.toggle("Only what fits", value=True)
# Usable first, fastest first; then what fits but crawls; then what does not fit.
ranked = sorted(fits, key=lambda e: (not usable(e, min_tps), e.placement == "does not fit", -(e.decode_tps or 0.0)))
shown = [estimate for estimate in ranked if estimate.placement != "does not fit" or not only_fitting]
fits_table = fits_frame(shown, min_tps)
st.dataframe(fits_table, hide_index=True, placeholder="",
             column_config={name: st.column_config.NumberColumn(format=fmt) for name, fmt in plain_formats(fits_table).items()})
st.caption("Weights at the quantization's bits per weight, plus the KV cache at this context (f16) and the runtime's "
           "overhead; an estimate from data/model_catalog.csv, not a measurement. Decode speed ≈ usable memory "
           f"bandwidth ÷ bytes read per token: this machine's {format_figure(probe.gbps, 'GB/s')} GB/s (measured "
           f"{probe.measured_at})" + (f", the GPU's {format_figure(gpu_gbps, 'GB/s')} GB/s (table)" if gpu_gbps else "")
           + ".")
try:
    checks = check_against_runs(
        analysis_frame(open_store()).select("model", "quantization", "machine", "status", "decode_tps"),
        ram_gbps=probe.gbps, gpu_gbps=gpu_gbps, ram_gb=ram_gb, vram_gb=vram_gb, context_tokens=int(context_tokens))
except EnviroLLMError:
    checks = []
for check in checks:
    st.caption(plain(f"Check: {check.model} {check.quantization} measured {format_figure(check.measured_tps)} "
                     f"tokens/s here over {check.runs} run(s), estimated {format_figure(check.estimated_tps)}: "
                     f"measured/estimated {format_figure(check.ratio)}."))

st.header("Picks from your results")
try:
    store = open_store()
    frame = analysis_frame(store)
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    st.stop()
if frame.is_empty():
    st.info("No runs stored yet: benchmark a few models (Benchmark page) and their picks appear here.")
    st.stop()
group_col, floor_col, machines_col = st.columns(3)
by = group_col.radio("Compare within each", ["prompt_hash", "preset"], horizontal=True,
                     format_func={"prompt_hash": "prompt", "preset": "task (preset)"}.get)
quality_floor = floor_col.number_input("Quality floor for the most efficient pick (0-100)", 0, 100, int(QUALITY_FLOOR))
across_machines = machines_col.toggle(
    "Compare across machines", value=False,
    help="Off: each machine's configurations are picked among apart (a laptop's runs never beside a workstation's).")
recommendations = stored_recommendations(store, by, quality_floor, across_machines)
if not recommendations:
    st.info("No completed run to recommend from" + (" (no run has a task preset)." if by == "preset" else "."))


def show_picks(group: GroupRecommendation, expanded: bool) -> None:
    picks = st.expander(plain(f"{group.label} · on {group.measured_on} · {group.n_configs} configurations"),
                        expanded=expanded, on_change="rerun", key=f"picks-{group.group_by}-{group.group}-{group.machine}")
    if not picks.open:  # folded: nothing inside is sent, so the browser draws only the label
        return
    with picks:
        st.table(text_table(picks_frame(group)), hide_index=True)
        if group.pareto:
            st.caption(plain("Pareto frontier (nothing else is both better and cheaper): "
                             + " → ".join(config.label for config in group.pareto)))
        for note in group.notes:
            st.caption(plain(note))
        if group.quality_methods_mixed:
            st.warning(plain(group.quality_methods_mixed))


# Past a dozen groups, the rest are chosen one at a time (a long list of labels helps nobody).
for index, group in enumerate(recommendations[:MAX_GROUPS_LISTED]):
    show_picks(group, expanded=index == 0)
if len(recommendations) > MAX_GROUPS_LISTED:
    more = recommendations[MAX_GROUPS_LISTED:]
    chosen_more = st.selectbox(
        f"{len(more)} more groups (of {len(recommendations)}): show the picks of", range(len(more)), index=None,
        placeholder="Choose a group",
        format_func=lambda i: f"{more[i].label} · on {more[i].measured_on} · {more[i].n_configs} configurations",
    )
    if chosen_more is not None:
        show_picks(more[chosen_more], expanded=True)

st.header("A month of your use")
try:
    settings = load_settings()
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    settings = Settings()
try:
    tariff = make_tariff(settings.country_code, settings.carbon_intensity_g_per_kwh,
                         settings.electricity_price_per_kwh, settings.currency)
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    st.stop()
price = (f"{tariff.price_per_kwh:g} {tariff.currency}/kWh" if tariff.price_per_kwh is not None
         else "no electricity price set (Settings)")
st.caption(f"Grid: {tariff.grid.country}, {format_figure(tariff.grid.g_co2_per_kwh, 'g/kWh')} g CO2e/kWh "
           f"({tariff.grid.source}); {price}.")
labels = {group.group: group.label for group in recommendations}  # the month table spans machines, each labelled
chosen = st.selectbox("For the configurations measured on", list(labels), format_func=labels.get)
usage_col, amount_col = st.columns(2)
usage = usage_col.radio("Usage", ["tokens", "requests"], horizontal=True,
                        format_func={"tokens": "tokens generated per day", "requests": "requests per day"}.get)
amount = amount_col.number_input(f"{usage.capitalize()} per day", min_value=0, max_value=10**10,
                                 value=100_000 if usage == "tokens" else 500, step=1000 if usage == "tokens" else 50)
if chosen is not None:
    table = monthly_table(
        config_stats(frame, by, chosen), tariff,
        tokens_per_day=float(amount) if usage == "tokens" else None,
        requests_per_day=float(amount) if usage == "requests" else None,
    )
    st.table(text_table(table), hide_index=True)
    st.caption(f"{energy_caption(energy_sources(str(store.path)))} of each configuration on this prompt or task, "
               "times your usage, times 30 days.")
