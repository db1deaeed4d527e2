"""Two writer processes and a reader on one database file at once: no errors, no lost rows."""

import json
import os
import subprocess
import sys
from pathlib import Path

from envirollm_core.store import Store

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("hammer_worker.py")
SOAK_S = float(os.environ.get("ENVIROLLM_SOAK_S", "60"))


def test_two_writers_and_a_reader_for_a_minute(tmp_path):
    db = tmp_path / "shared.duckdb"
    Store(db)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    roles = [("writer", "alpha"), ("writer", "beta"), ("reader", "reader")]
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), role, str(db), str(SOAK_S), tag],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        for role, tag in roles
    ]
    outputs = [worker.communicate(timeout=SOAK_S + 120) for worker in workers]
    for (role, tag), worker, (_, err) in zip(roles, workers, outputs, strict=True):
        assert worker.returncode == 0 and err == "", f"{tag} ({role}) failed: {err[-2000:]}"
    alpha, beta, reader = (json.loads(out) for out, _ in outputs)
    stored = {run_id for run_id in Store(db).runs_frame()["id"]}
    written = set(alpha["written"]) | set(beta["written"])
    assert written == stored, f"lost {len(written - stored)} run(s)"
    assert len(alpha["written"]) > 20 and len(beta["written"]) > 20 and reader["reads"] > 20
    assert not reader["count_shrank"]
