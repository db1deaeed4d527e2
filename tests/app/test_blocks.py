"""The pages' shared block: store reads kept until the database changes (whoever changes it), and the lists of
recommendations that stay light with many prompt groups."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from app_pages.blocks import SETTLED_NS, database_state
from envirollm_core.records import prompt_hash
from envirollm_core.store import Store
from envirollm_core.views.formats import plain
from tests.fakes.runs import realistic_runs

REPO = Path(__file__).resolve().parents[2]


def page(name: str) -> AppTest:
    return AppTest.from_file(str(REPO / "app_pages" / name), default_timeout=60)


def runs_heading(app: AppTest) -> str:
    return next(h.value for h in app.subheader if h.value.startswith("Runs ("))


def test_the_database_state_changes_with_every_write_and_not_with_reads(isolated_home):
    store = Store()
    runs = realistic_runs(batches=1, repeat=1)
    states = [database_state(store.path)]
    store.add_runs(runs[:4])
    states.append(database_state(store.path))
    assert database_state(store.path) != states[-1]  # just written: not settled, never kept
    time.sleep(SETTLED_NS / 1e9 + 0.1)
    settled = database_state(store.path)
    store.prompt_groups(), store.runs_frame(), store.count()  # reads
    assert database_state(store.path) == settled
    store.set_note(runs[0].id, "checked")
    states.append(database_state(store.path))
    store.delete_run(runs[1].id)
    states.append(database_state(store.path))
    assert len(set(states)) == len(states)


def test_results_shows_runs_stored_by_another_writer_since_the_last_visit(isolated_home):
    runs = realistic_runs(batches=2, repeat=3, failed=False)
    first, second = runs[: len(runs) // 2], runs[len(runs) // 2:]
    group = max(runs, key=lambda run: run.created_at).prompt_hash  # the most recent group: the one shown first
    Store().add_runs(first)
    shown = sum(run.prompt_hash == group for run in first)
    assert runs_heading(page("results.py").run()) == f"Runs ({shown})"
    assert runs_heading(page("results.py").run()) == f"Runs ({shown})"  # a second visit, from what was kept

    Store().add_runs(second)  # as the CLI would, through its own store
    added = sum(run.prompt_hash == group for run in second)
    assert runs_heading(page("results.py").run()) == f"Runs ({shown + added})"

    oldest = min((run for run in runs if run.prompt_hash == group), key=lambda run: run.created_at)
    Store().delete_run(oldest.id)
    app = page("results.py").run()
    assert runs_heading(app) == f"Runs ({shown + added - 1})"
    table = next(frame.value for frame in app.dataframe if "run id" in frame.value.columns)
    assert not any(oldest.id.startswith(short) for short in table["run id"])


def test_settings_counts_the_runs_stored_now(isolated_home):
    runs = realistic_runs(batches=1, repeat=1)
    Store().add_runs(runs[:3])
    assert any(c.value.startswith("3 runs stored") for c in page("settings.py").run().caption)
    Store().add_runs(runs[3:5])
    assert any(c.value.startswith("5 runs stored") for c in page("settings.py").run().caption)


def many_prompt_groups(n_groups: int) -> list:
    """`n_groups` prompts (two tasks, each asked in several wordings), each answered by the four configurations."""
    runs = []
    for variant in range(n_groups // 2):
        for run in realistic_runs(batches=1, repeat=1, seed=100 + variant, failed=False):
            prompt = f"{run.prompt} (wording {variant})"
            runs.append(dataclasses.replace(run, prompt=prompt, prompt_hash=prompt_hash(prompt)))
    return runs


def test_recommendations_list_a_dozen_groups_and_let_the_others_be_chosen(isolated_home):
    Store().add_runs(many_prompt_groups(16))
    app = page("recommendations.py").run()
    assert not app.exception and not app.error
    assert len(app.expander) == 12
    more = next(box for box in app.selectbox if box.label.startswith("4 more groups (of 16)"))
    assert more.value is None and len(more.options) == 4
    more.set_value(3).run()
    assert len(app.expander) == 13
    assert app.expander[12].label == plain(more.format_func(3))
    # Folded groups send only their label: the first group's picks (open) and the chosen group's are drawn.
    assert len(app.table) == 3  # and the month's table
    picks = app.table[1].value
    assert "most efficient" in list(picks["pick"])


def test_recommendations_with_few_groups_list_them_all(isolated_home):
    Store().add_runs(many_prompt_groups(2))
    app = page("recommendations.py").run()
    assert len(app.expander) == 2
    assert not any("more groups" in box.label for box in app.selectbox)
