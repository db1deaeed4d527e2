"""Analyze an exported file (ours, or the original EnviroLLM's CSV) in this session; save it only on request."""

import streamlit as st

from app_pages.blocks import result_chart_tabs
from envirollm_core.errors import EnviroLLMError
from envirollm_core.records import RunResult
from envirollm_core.settings import read_only_mode
from envirollm_core.store import ParsedFile, Store, parse_runs, runs_to_frame
from envirollm_core.store.exchange import UPLOAD_LIMITS
from envirollm_core.views.formats import plain
from envirollm_core.views.prompt_groups import analyze_group, group_label, prompt_groups
from envirollm_core.views.run_table import TABLE_FORMATS, runs_table


def parsed_upload(upload) -> ParsedFile:
    """Validated once per upload (it is analysed across many reruns) and kept in this session only, so it is freed
    with the session, never cached for others; the upload limits are checked before the file is decoded."""
    kept = st.session_state.get("import_upload")
    if kept is None or kept[0] != upload.file_id:
        st.session_state.pop("import_upload", None)  # the previous file goes before the next is read
        with st.spinner("Reading the file..."):
            kept = (upload.file_id, parse_runs(upload.getvalue(), upload.name, UPLOAD_LIMITS))
        st.session_state["import_upload"] = kept
    return kept[1]


st.title("Import")
st.caption("Upload an export (CSV, Parquet or JSON from `envirollm export` or the Results page, or the CSV the original "
           "EnviroLLM exports). It is analysed here, in your session only; nothing is stored unless you save it.")
upload = st.file_uploader("Export file", type=["csv", "parquet", "json"])
if upload is None:
    st.session_state.pop("import_upload", None)
    st.stop()
try:
    parsed = parsed_upload(upload)
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    st.stop()
if not parsed.runs:
    st.warning(f"{upload.name} holds no runs.")
    st.stop()

frame = runs_to_frame(parsed.runs)
read_note = f"{len(parsed.runs)} runs read from {upload.name} ({parsed.format})"
saved = st.session_state.get("saved_uploads", {}).get(upload.file_id)  # set by the Save button's callback
st.success(f"{read_note}. {saved}" if saved else f"{read_note}; not saved.")
groups = prompt_groups(frame)
labels = {row["prompt_hash"]: group_label(row) for row in groups.iter_rows(named=True)}
prompt_hash = st.selectbox(f"Prompt group ({len(labels)} prompts)", list(labels), format_func=labels.get)
group = frame.filter(frame["prompt_hash"] == prompt_hash)

result_chart_tabs(analyze_group(group))
st.dataframe(runs_table(group), hide_index=True, placeholder="",
             column_config={name: st.column_config.NumberColumn(format=fmt) for name, fmt in TABLE_FORMATS.items()})

st.divider()
read_only = read_only_mode()
if read_only:
    st.info("Read-only instance: the runs can be analysed here but not saved (the database refuses it too).")


def save_upload(runs: list[RunResult], file_id: str) -> None:
    # A callback runs before the page is drawn again, so the banner above already says what was saved.
    try:
        added, skipped = Store().add_runs(runs, skip_existing=True)
        st.session_state.setdefault("saved_uploads", {})[file_id] = (
            f"Saved: {added} runs added, {skipped} already stored and skipped.")
    except EnviroLLMError as exc:
        st.session_state["save_error"] = str(exc)


st.button("Save these runs to the database", help="Runs whose id is already stored are skipped.", disabled=read_only,
          on_click=save_upload, args=(parsed.runs, upload.file_id))
if "save_error" in st.session_state:
    st.error(plain(st.session_state.pop("save_error")))
