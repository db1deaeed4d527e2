"""The machine EnviroLLM runs on, and the embedded engine."""

import streamlit as st

from envirollm_core.backends.embedded import shared_engine, start_shared_engine
from envirollm_core.backends.openai_compat import stream_text
from envirollm_core.errors import EnviroLLMError
from envirollm_core.figures import format_figure
from envirollm_core.settings import read_only_mode
from envirollm_core.telemetry.system_info import system_info
from envirollm_core.views.formats import plain, text_table
from envirollm_core.views.monitor import gpus_frame

st.title("System")

info = system_info()
cpu, ram, gpus, os_col = st.columns(4)
cpu.metric("CPU", f"{info.cpu_logical_cores} threads", help=info.cpu_model)
ram.metric("RAM", f"{format_figure(info.ram_total_gb, 'GB')} GB")
gpus.metric("NVIDIA GPUs", len(info.gpus))
os_col.metric("OS", info.os_name)
st.caption(f"CPU model: {info.cpu_model}")
if info.gpus:
    st.table(text_table(gpus_frame(info.gpus)), hide_index=True)
else:
    st.caption("No NVIDIA GPU found (no driver or no device): GPU readings will be unmeasured.")

st.header("Embedded engine")
status = st.empty()  # drawn again once a prompt below has started the engine


def show_status() -> None:
    engine = shared_engine()
    if engine.is_running():
        status.success(f"Running: {engine.model.label} at {engine.base_url} (pid {engine.pid}, {engine.threads} threads)")
    else:
        status.info(f"Stopped. It serves {engine.model.label} through llama.cpp on a loopback port with "
                    f"{engine.threads} threads when started.")


show_status()

read_only = read_only_mode()
if read_only:
    st.info("Read-only instance: the embedded engine cannot be run from here (the core refuses it too).")
prompt = st.text_input("Prompt", value="Explain in two sentences why the sky is blue.")
ask_label = "Ask the engine" if shared_engine().is_running() else "Start the engine and ask"
if st.button(ask_label, type="primary", disabled=read_only or not prompt.strip()):
    try:
        with st.spinner("Starting the embedded engine..."):
            engine = start_shared_engine("asking the embedded engine")
        show_status()
        st.session_state["system_answer"] = st.write_stream(stream_text(engine.base_url, engine.model_id, prompt))
        st.rerun()  # once more, so the button too says the engine runs; the answer is kept for it
    except EnviroLLMError as exc:
        st.error(plain(str(exc)))
elif "system_answer" in st.session_state:
    st.markdown(plain(str(st.session_state["system_answer"])))
