"""Stored runs, one prompt group at a time: table, charts, a run's response and samples, notes, delete, export."""

import streamlit as st

from app_pages.blocks import group_analysis, group_runs, open_store, prompt_groups, result_chart_tabs, stored_run
from envirollm_core import charts
from envirollm_core.benchmark.sweep import find_knee, levels_of
from envirollm_core.errors import EnviroLLMError
from envirollm_core.figures import format_figure
from envirollm_core.views.downloads import export_bytes
from envirollm_core.views.formats import plain, text_table
from envirollm_core.views.load_sweeps import LEVEL_FORMATS, levels_table, sweep_labels
from envirollm_core.views.prompt_groups import group_label
from envirollm_core.views.run_table import TABLE_FORMATS, runs_table
from envirollm_core.views.run_viewer import TRACE_PANELS, components_frame, trace_long

st.title("Results")
try:
    store = open_store()
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    st.stop()

groups = prompt_groups(store)
if groups.is_empty():
    st.info("No runs stored yet. Start one on the Benchmark page, import a file on the Import page, "
            "or run `envirollm demo` in a terminal.")
    st.stop()

labels = {row["prompt_hash"]: group_label(row) for row in groups.iter_rows(named=True)}
prompt_hash = st.selectbox(
    f"Prompt group ({len(labels)} prompts; runs are only compared with runs of the same prompt)",
    list(labels), format_func=labels.get,
)
history = st.expander(f"History: every prompt group ({len(labels)})", on_change="rerun", key="history")
if history.open:  # a grid the browser would draw even folded: built only for a visitor who opens it
    history.dataframe(
        groups.select("preset", "prompt_preview", "n_runs", "n_models", "last_run_at", "prompt_hash"),
        hide_index=True, placeholder="",
        column_config={"preset": "task", "prompt_preview": "prompt", "n_runs": "runs", "n_models": "models",
                       "last_run_at": st.column_config.DatetimeColumn("last run (UTC)", format="YYYY-MM-DD HH:mm"),
                       "prompt_hash": "prompt hash"},
    )
frame = group_runs(store, prompt_hash)

(load_tab,) = result_chart_tabs(group_analysis(store, prompt_hash), extra_tabs=["Load"])
if load_tab.open:  # load sweeps span prompts: this tab shows any stored sweep, whichever group is chosen above
    with load_tab:
        sweeps = store.sweep_levels()
        if sweeps.is_empty():
            st.info("No load sweep stored yet: run a Load sweep on the Benchmark page, or `envirollm sweep`.")
        else:
            sweep_names = sweep_labels(sweeps)
            sweep_id = st.selectbox("Load sweep", list(sweep_names), format_func=sweep_names.get)
            levels = sweeps.filter(sweeps["sweep_id"] == sweep_id)
            knee = find_knee(levels_of(levels))
            st.caption(plain(f"Knee: {knee} concurrent streams (past it, throughput grows < 10 % while p95 latency grows)"
                             if knee is not None else "No knee in these levels."))
            for chart in charts.load_charts(levels, knee).values():
                st.altair_chart(chart)
            st.dataframe(levels_table(levels, knee), hide_index=True, placeholder="",
                         column_config={name: st.column_config.NumberColumn(format=fmt) for name, fmt in LEVEL_FORMATS.items()})
            st.caption("Measured over each level's steady-state window; per-request energy does not exist when "
                       "streams overlap, so energy per token and per request are the window's energy shared out.")

st.subheader(f"Runs ({frame.height})")
table = runs_table(frame)
selection = st.dataframe(
    table, hide_index=True, placeholder="", on_select="rerun", selection_mode="single-row",
    key=f"runs-{prompt_hash}",
    column_config={
        **{name: st.column_config.NumberColumn(format=fmt) for name, fmt in TABLE_FORMATS.items()},
        "time (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
    },
)
st.caption("Click a column header to sort; select a row to see that run below.")

export_csv, export_parquet, export_all = st.columns(3)
export_csv.download_button("Export this prompt's runs (CSV)", lambda: export_bytes(store, "csv", prompt_hash),
                           file_name=f"envirollm-{prompt_hash}.csv", mime="text/csv")
export_parquet.download_button("Export this prompt's runs (Parquet)", lambda: export_bytes(store, "parquet", prompt_hash),
                               file_name=f"envirollm-{prompt_hash}.parquet", mime="application/vnd.apache.parquet")
export_all.download_button("Export every run (CSV)", lambda: export_bytes(store, "csv"),
                           file_name="envirollm-runs.csv", mime="text/csv")

st.header("One run")
rows = [row for row in selection.selection.rows if row < table.height]  # a deleted run's row may be gone
typed = st.text_input("Run id (or its first characters); a selected row above shows its run", key="run_id").strip()
try:
    if typed and not rows:
        run_id = store.resolve_run_id(typed)
    else:  # the table's rows are the frame's, in its order: the selected run, else the newest of the group
        run_id = frame["id"][rows[0] if rows else 0]
    run = stored_run(store, run_id)
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    st.stop()

st.subheader(plain(f"{run.model} · {run.status} · {run.created_at:%Y-%m-%d %H:%M:%S} UTC"))
st.text(f"run {run.id} · batch {run.batch_id} · {run.backend} at {run.base_url} · "
        f"quantization {run.quantization or 'unknown'}")
ttft, speed, energy, quality = st.columns(4)
ttft.metric("TTFT", f"{format_figure(run.ttft_s, 's')} s" if run.ttft_s is not None else "n/a")
speed.metric("Decode", f"{format_figure(run.decode_tps, 'tokens/s')} tokens/s" if run.decode_tps is not None else "n/a")
energy.metric("Energy", f"{format_figure(run.energy_wh, 'Wh')} Wh" if run.energy_wh is not None else "unmeasured",
              help=(f"± {format_figure(run.energy_uncertainty_wh, 'Wh')} Wh at most, from the scrape interval at the window's edges"
                    if run.energy_uncertainty_wh is not None else None))
quality.metric("Quality", format_figure(run.quality_score, "score") if run.quality_score is not None else "n/a",
               help=f"by {run.quality_method}" if run.quality_method else None)
# Prompts, answers and errors come from users and servers: shown as text, never as markdown or HTML.
if run.error:
    st.caption("Error")
    st.text(run.error)
st.caption("Prompt")
st.text(run.prompt)
st.caption("Response")
st.text(run.response or "(empty)")

if run.prefill_energy_wh is not None:
    prefill, decode = st.columns(2)
    plus_minus = f" ± {run.phase_split_uncertainty_wh:.5f}" if run.phase_split_uncertainty_wh is not None else ""
    prefill.metric("Prefill energy (before the first token)", f"{run.prefill_energy_wh:.5f}{plus_minus} Wh")
    decode.metric("Decode energy (from the first token on)", f"{run.decode_energy_wh:.5f}{plus_minus} Wh")
elif run.sweep_concurrency is not None:
    st.caption(f"Sent in a load sweep at {run.sweep_concurrency} concurrent streams: its energy is the level's "
               "(Load tab), not its own.")
energy_tab, trace_tab = st.tabs(["Energy by component", "Samples during the run"], key="run-tab", on_change="rerun")
if energy_tab.open:
    energy_tab.table(text_table(components_frame(run)), hide_index=True)
if trace_tab.open:  # the samples are read and drawn only for a visitor who asks for them
    samples = trace_long(store.trace_frame(run.id))
    if samples.is_empty():
        trace_tab.caption("No samples were stored with this run.")
    panels = samples.partition_by("panel", as_dict=True)
    for panel, unit in TRACE_PANELS.items():
        if (panel,) in panels:
            trace_tab.altair_chart(charts.timeline(panels[(panel,)], title=panel, unit=unit,
                                                   x_title="seconds since the request"))

read_only = store.read_only
if read_only:
    st.info("Read-only instance: notes and deletes are disabled (the database refuses them too).")
note_col, delete_col = st.columns([3, 1])
with note_col.form("note"):
    note = st.text_area("Note", value=run.notes, disabled=read_only)
    if st.form_submit_button("Save the note", disabled=read_only):
        try:
            store.set_note(run.id, note)
            st.success("Note saved.")
        except EnviroLLMError as exc:
            st.error(plain(str(exc)))


def delete_run(run_id: str) -> None:
    # A callback runs before the page is drawn again, so it may clear the run id box.
    try:
        store.delete_run(run_id)
        st.session_state["run_id"] = ""
        st.session_state["deleted_run"] = run_id
    except EnviroLLMError as exc:
        st.session_state["delete_error"] = str(exc)


with delete_col:
    sure = st.checkbox("Delete this run for good", disabled=read_only, key=f"sure-{run.id}")
    st.button("Delete", disabled=read_only or not sure, type="primary", on_click=delete_run, args=(run.id,))
if "deleted_run" in st.session_state:
    st.toast(f"Run {st.session_state.pop('deleted_run')} deleted.")
if "delete_error" in st.session_state:
    st.error(plain(st.session_state.pop("delete_error")))
