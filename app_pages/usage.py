"""Real use through the metering proxy: what it cost per model, client and day, and the router's decisions."""

import streamlit as st

from app_pages.blocks import open_store, usage_and_requests
from envirollm_core.analysis import make_tariff
from envirollm_core.errors import EnviroLLMError
from envirollm_core.figures import format_figure
from envirollm_core.proxy.server import ProxyConfig, app_proxy, start_app_proxy, stop_app_proxy
from envirollm_core.proxy.usage import parse_since, requests_frame, usage_frame
from envirollm_core.settings import load_settings, read_only_mode
from envirollm_core.views.formats import plain, text_table

SINCE = {"last day": "1d", "last 7 days": "7d", "last 30 days": "30d", "last 90 days": "90d"}

st.title("Usage")
st.caption("What your own tools really sent to your LLM server, measured by the metering proxy "
           "(`envirollm proxy --upstream URL`, or start it below): prompts and answers are kept as a hash and a "
           "length unless you ask for the text.")

try:
    settings = load_settings()
    tariff = make_tariff(country=settings.country_code, g_co2_per_kwh=settings.carbon_intensity_g_per_kwh,
                         price_per_kwh=settings.electricity_price_per_kwh, currency=settings.currency)
    store = open_store()
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    st.stop()

since_col, by_col = st.columns(2)
since_label = since_col.selectbox("Period", list(SINCE), index=1)
by = by_col.radio("Per", ["model", "client", "day"], horizontal=True)
since = parse_since(SINCE[since_label])
rows, requests = usage_and_requests(store, tariff, since, by)
if not rows:
    st.info(f"No request through the proxy in the {since_label}. Start it (below, or `envirollm proxy --upstream URL`) "
            "and point your tools at it.")
else:
    energy = sum(row.energy_wh or 0 for row in rows)
    recommended = sum(row.recommended_energy_wh or 0 for row in rows)
    requests_col, energy_col, co2_col, recommended_col = st.columns(4)
    requests_col.metric("Requests", sum(row.requests for row in rows), help=f"{sum(row.failed for row in rows)} failed")
    energy_col.metric("Energy", f"{format_figure(energy, 'Wh')} Wh")
    co2_col.metric("CO2e", f"{format_figure(sum(row.co2e_g or 0 for row in rows), 'g')} g",
                   help=f"at {format_figure(tariff.grid.g_co2_per_kwh, 'g/kWh')} g CO2e/kWh ({tariff.grid.country})")
    change = recommended - energy
    recommended_col.metric("If recommended", f"{format_figure(recommended, 'Wh')} Wh",
                           delta=f"{'+' if change > 0 else ''}{format_figure(change, 'Wh')} Wh", delta_color="inverse",
                           help="The same requests priced at the recommended configuration of their task")
    st.table(text_table(usage_frame(rows, by, tariff.currency)), hide_index=True)
    st.caption("'Recommended' prices each request whose task (the routed task, else the prompt group) has a "
               "recommended configuration in your benchmarks at that configuration's energy per token; the others "
               "at their own energy ('comparable' counts the former).")
    st.subheader("Latest requests and routing decisions")
    st.dataframe(requests_frame(requests), hide_index=True)

st.header("Metering proxy")
running = app_proxy()
read_only = read_only_mode()
if running is not None:
    st.success(f"Running at {running.url}, passing requests to {running.config.upstream}.")
    if st.button("Stop the proxy", disabled=read_only):
        stop_app_proxy()
        st.rerun()
elif read_only:
    st.info("Read-only instance: the metering proxy cannot be started from here (the core refuses it too).")
else:
    with st.form("proxy"):
        upstream = st.text_input("Upstream URL", value="http://localhost:11434",
                                 help="Your LLM server: Ollama, LM Studio (http://localhost:1234/v1), llama.cpp...")
        kind = st.radio("API", ["ollama", "openai"], horizontal=True)
        port = st.number_input("Port (on 127.0.0.1)", min_value=0, max_value=65535, value=11435)
        store_text = st.checkbox("Also store prompts and answers", value=False)
        if st.form_submit_button("Start the proxy", type="primary"):
            try:
                start_app_proxy(ProxyConfig(upstream=upstream, port=int(port), kind=kind, store_text=store_text))
                st.rerun()
            except EnviroLLMError as exc:
                st.error(plain(str(exc)))
