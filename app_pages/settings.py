"""Where the database is, and the user's settings: carbon intensity, electricity price, sampling, default judge."""

import streamlit as st

from app_pages.blocks import open_store, run_count
from envirollm_core.analysis.carbon import WORLD, load_grid_intensities
from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.figures import format_figure
from envirollm_core.paths import default_db_path
from envirollm_core.quality.judge_checks import load_judge_checks
from envirollm_core.settings import (
    Settings,
    load_settings,
    read_only_mode,
    save_settings,
    settings_path,
)
from envirollm_core.telemetry.sampler import get_sampler
from envirollm_core.views.formats import plain, text_table
from envirollm_core.views.judge_checks import judge_checks_frame

st.title("Settings")
read_only = read_only_mode()
if read_only:
    st.warning("This instance is read-only (ENVIROLLM_READ_ONLY or `read_only` in the settings file): "
               "settings are shown but cannot be changed here.")

st.subheader("Database")
database = default_db_path()
st.text(str(database))
try:
    stored = run_count(open_store(database)) if database.exists() else 0
    size = f"{format_figure(database.stat().st_size / 1e6, 'MB')} MB" if database.exists() else "not created yet"
    st.caption(f"{stored} runs stored · {size}. Set ENVIROLLM_HOME before starting the app (or pass --db to the CLI) "
               "to use another database.")
except EnviroLLMError as exc:
    st.error(plain(str(exc)))

try:
    settings = load_settings()
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    settings = Settings()

grids = load_grid_intensities()
countries = sorted(grids, key=lambda code: (code != WORLD, grids[code].country))
with st.form("settings"):
    st.subheader("Carbon and cost")
    use_own = st.toggle("Use my own grid carbon intensity", value=settings.carbon_intensity_g_per_kwh is not None,
                        disabled=read_only)
    country_col, own_col = st.columns(2)
    country = country_col.selectbox(
        "Country (grid carbon intensity)", countries,
        index=countries.index(settings.country_code if settings.country_code in grids else WORLD),
        format_func=lambda code: f"{grids[code].country} · {format_figure(grids[code].g_co2_per_kwh, 'g/kWh')} g CO2e/kWh",
        disabled=read_only,
    )
    own = own_col.number_input("My own figure (g CO2e per kWh)", min_value=0.0, max_value=2000.0,
                               value=settings.carbon_intensity_g_per_kwh, placeholder="e.g. 350", disabled=read_only)
    price_col, currency_col = st.columns(2)
    price = price_col.number_input("Electricity price per kWh (empty: no cost figures)", min_value=0.0,
                                   max_value=100.0, value=settings.electricity_price_per_kwh, step=0.01,
                                   placeholder="e.g. 0.25", disabled=read_only)
    currency = currency_col.text_input("Currency", value=settings.currency, max_chars=8, disabled=read_only)
    st.subheader("Measurement")
    interval = st.number_input("Sampling interval (s)", min_value=0.01, max_value=10.0,
                               value=settings.sampling_interval_s, step=0.05, format="%.2f", disabled=read_only,
                               help="How often the sampler reads power, CPU, RAM and GPUs; "
                                    "10 Hz (0.1 s) or faster keeps short bursts (see the design's measurement rules).")
    st.caption(f"The sampler running in this app reads every {get_sampler().interval_s:g} s.")
    energy_col, selector_col = st.columns(2)
    energy_from = energy_col.text_input(
        "Default energy source", value=settings.energy_from or "local", disabled=read_only,
        help="local: this machine. prometheus://HOST:9090: a serving machine's counters in Prometheus (DCGM exporter, "
             "node_exporter RAPL, Kepler); used by the Benchmark page, the Monitor page and the CLI when no "
             "--energy-from is given. Credentials are never stored: give them on the command line.",
    )
    energy_selector = selector_col.text_input("Default energy selector (Prometheus label matchers)",
                                              value=settings.energy_selector or "", disabled=read_only,
                                              placeholder='instance="gpu-box:9400"')
    st.subheader("Default quality judge")
    judge_url_col, judge_model_col = st.columns(2)
    judge_url = judge_url_col.text_input("Judge URL (OpenAI-compatible)", value=settings.judge_url or "",
                                         placeholder="http://127.0.0.1:11434/v1", disabled=read_only)
    judge_model = judge_model_col.text_input("Judge model", value=settings.judge_model or "", disabled=read_only)
    submitted = st.form_submit_button("Save the settings", type="primary", disabled=read_only)

if submitted:
    try:
        if use_own and own is None:
            raise UsageError("give your own carbon intensity (g CO2e per kWh), or turn the toggle off to use a country's")
        remote_energy = None if energy_from.strip().lower() in ("", "local") else energy_from.strip()
        save_settings(Settings(
            country_code=None if use_own else country,
            carbon_intensity_g_per_kwh=own if use_own else None,
            electricity_price_per_kwh=price,
            currency=currency.strip().upper() or "USD",
            sampling_interval_s=float(interval),
            judge_url=judge_url.strip() or None,
            judge_model=judge_model.strip() or None,
            read_only=settings.read_only,
            energy_from=None if remote_energy is None else remote_energy,
            energy_selector=(energy_selector.strip() or None) if remote_energy else None,
        ))
        get_sampler().set_interval(float(interval))
        st.success(f"Saved to {settings_path()}.")
    except EnviroLLMError as exc:
        st.error(plain(str(exc)))

st.subheader("Judge checks")
checks = load_judge_checks()
if not checks:
    st.caption("No judge has been checked yet. `envirollm judge-check --judge-url URL --judge-model M` grades five "
               "answers whose right grade is known; only a judge that passed grades (one never checked is checked "
               "on its first use), any other leaves quality to the rough heuristic.")
else:
    st.table(text_table(judge_checks_frame(checks.values())), hide_index=True)
