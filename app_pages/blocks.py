"""What several pages share (not a page: `streamlit_app.py` lists the pages): store reads kept until the database
changes, and the result charts in tabs.

Opening a DuckDB file and reading it costs tens of milliseconds per query at 100,000 runs, and a page reads it on
every rerun of every session; so each read here is kept (in this server process, for every session) under a key
that changes whenever the stored runs change: the database's path and the size, modification time and inode of
its file and of its write-ahead log, where every commit, from this process or any other (the CLI, a second app),
lands first. The kept objects are shared, not copied: Polars frames are never changed in place by the pages.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import polars as pl
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from envirollm_core import charts
from envirollm_core.analysis import recommend
from envirollm_core.analysis.recommend import GroupRecommendation
from envirollm_core.analysis.carbon import Tariff
from envirollm_core.analysis.stats import ANALYSIS_COLUMNS
from envirollm_core.paths import default_db_path
from envirollm_core.proxy.usage import UsageRow, live_runs, usage
from envirollm_core.records import RunResult
from envirollm_core.settings import read_only_mode
from envirollm_core.store import Store
from envirollm_core.views.prompt_groups import GroupAnalysis, analyze_group

FileState = tuple[int, ...] | None
DatabaseState = tuple[str, FileState, FileState]
# Two commits within one tick of the file system's clock can leave the same mtime and size: a file changed this
# recently gets a key of its own each time (read afresh, never kept for the next visit).
SETTLED_NS = 1_000_000_000


def _file_state(path: Path) -> FileState:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    if time.time_ns() - stat.st_mtime_ns < SETTLED_NS:
        return stat.st_mtime_ns, stat.st_size, stat.st_ino, time.monotonic_ns()
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def database_state(path: Path) -> DatabaseState:
    """A key that changes whenever the runs stored at `path` change (see the module's docstring)."""
    return str(path), _file_state(path), _file_state(path.with_name(path.name + ".wal"))


@st.cache_resource(max_entries=8, show_spinner=False)
def _opened(state: DatabaseState, read_only: bool) -> Store:
    return Store(Path(state[0]), read_only=read_only)


def open_store(path: Path | None = None) -> Store:
    """The app's store (or the one at `path`): its schema is checked once per state of the file, not per rerun."""
    path = Path(path).expanduser() if path is not None else default_db_path()
    return _opened(database_state(path), read_only_mode())


def state_of(store: Store) -> DatabaseState:
    return database_state(store.path)


@st.cache_resource(max_entries=8, show_spinner=False)
def _prompt_groups(_store: Store, state: DatabaseState) -> pl.DataFrame:
    return _store.prompt_groups()


def prompt_groups(store: Store) -> pl.DataFrame:
    """`Store.prompt_groups`, read once per change of the database."""
    return _prompt_groups(store, state_of(store))


@st.cache_resource(max_entries=32, show_spinner=False)
def _group_runs(_store: Store, state: DatabaseState, prompt_hash: str) -> pl.DataFrame:
    return _store.with_short_ids(_store.runs_frame(prompt_hash=prompt_hash))


def group_runs(store: Store, prompt_hash: str) -> pl.DataFrame:
    """One prompt's runs, each with its shortest unique id in the whole database."""
    return _group_runs(store, state_of(store), prompt_hash)


@st.cache_resource(max_entries=32, show_spinner=False)
def _group_analysis(_store: Store, state: DatabaseState, prompt_hash: str) -> GroupAnalysis:
    return analyze_group(_group_runs(_store, state, prompt_hash))


def group_analysis(store: Store, prompt_hash: str) -> GroupAnalysis:
    """`views.analyze_group` of one prompt's stored runs, worked out once per change of the database."""
    return _group_analysis(store, state_of(store), prompt_hash)


@st.cache_resource(max_entries=64, show_spinner=False)
def _run(_store: Store, state: DatabaseState, run_id: str) -> RunResult:
    return _store.run(run_id)


def stored_run(store: Store, run_id: str) -> RunResult:
    """`Store.run`, read once per change of the database."""
    return _run(store, state_of(store), run_id)


@st.cache_resource(max_entries=4, show_spinner=False)
def _analysis_frame(_store: Store, state: DatabaseState) -> pl.DataFrame:
    return _store.runs_frame(columns=ANALYSIS_COLUMNS)


def analysis_frame(store: Store) -> pl.DataFrame:
    """Every run's analysis columns (`ANALYSIS_COLUMNS`), read once per change of the database."""
    return _analysis_frame(store, state_of(store))


@st.cache_resource(max_entries=16, show_spinner=False)
def _recommendations(
    _store: Store, state: DatabaseState, by: str, quality_floor: float, across_machines: bool
) -> list[GroupRecommendation]:
    return recommend(_analysis_frame(_store, state), by=by, quality_floor=quality_floor,
                     across_machines=across_machines)


def recommendations(store: Store, by: str, quality_floor: float, across_machines: bool) -> list[GroupRecommendation]:
    """`analysis.recommend` over every stored run, worked out once per change of the database and of the choices."""
    return _recommendations(store, state_of(store), by, quality_floor, across_machines)


@st.cache_resource(max_entries=8, show_spinner=False)
def _run_count(_store: Store, state: DatabaseState) -> int:
    return _store.count()


def run_count(store: Store) -> int:
    return _run_count(store, state_of(store))


# A period ("last 7 days") slides with the clock even when nothing is stored: kept a minute at most.
@st.cache_resource(ttl=60, max_entries=16, show_spinner=False)
def _usage(_store: Store, state: DatabaseState, _tariff: Tariff, tariff_key: str, since: timedelta, by: str
           ) -> tuple[list[UsageRow], pl.DataFrame]:
    return usage(_store, _tariff, since=since, by=by), live_runs(_store, since)


def usage_and_requests(store: Store, tariff: Tariff, since: timedelta, by: str) -> tuple[list[UsageRow], pl.DataFrame]:
    """`proxy.usage.usage` and `live_runs` over the period, kept per database state for up to a minute."""
    return _usage(store, state_of(store), tariff, repr(tariff), since, by)


def result_chart_tabs(analysis: GroupAnalysis, extra_tabs: Sequence[str] = ()) -> list[DeltaGenerator]:
    """The metric to chart, then the four result charts of one prompt group in tabs (Results and Import pages).

    Only the open tab's chart is built, sent and drawn: a visit pays for one chart, not four. Returns the
    `extra_tabs` (drawn after the charts' tabs) for the page to fill."""
    metric = st.selectbox("Metric for the bars and the trends", list(charts.METRICS),
                          format_func=lambda name: charts.METRICS[name].axis_title)
    tabs = st.tabs([*charts.RESULT_CHART_TITLES, *extra_tabs], key="chart-tab", on_change="rerun")
    for title, tab in zip(charts.RESULT_CHART_TITLES, tabs):
        if not tab.open:
            continue
        chart = charts.result_chart(title, analysis.stats, analysis.frontier, analysis.batches, metric)
        if isinstance(chart, charts.NothingToDraw):
            tab.info(chart.reason)
        else:
            tab.altair_chart(chart)
    return tabs[len(charts.RESULT_CHART_TITLES):]
