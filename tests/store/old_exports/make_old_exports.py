"""Make the export fixtures of an older EnviroLLM (commit bb4f35b, schema version 2: before `source`, `client`,
`live_detail` and `energy_uncertainty_wh`), by running that EnviroLLM's own code:

    git -C /work/main worktree add /tmp/oldenv bb4f35b
    PYTHONPATH=/tmp/oldenv python tests/store/old_exports/make_old_exports.py tests/store/old_exports

Three runs (a measured one with samples, a failed one, one imported from an original EnviroLLM CSV) exported
as v2.csv, v2.parquet and v2.json; test_exchange.py checks that each imports with the right values.
"""

import csv
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from envirollm_core.records import ComponentEnergy, RunResult, TracePoint, prompt_hash
from envirollm_core.store import Store

out = Path(sys.argv[1])
prompt = "Explain quantum computing in simple terms."
measured = RunResult(
    id="11111111-aaaa-4bbb-8ccc-000000000001", batch_id="batch-old", created_at=datetime(2026, 11, 20, 9, 30, 1, 250000, tzinfo=timezone.utc),
    model="gemma-3-270m", backend="embedded", base_url="http://127.0.0.1:8080/v1", prompt=prompt,
    prompt_hash=prompt_hash(prompt), status="ok", preset="default", ttft_s=0.125, e2e_s=2.5, decode_tps=51.25,
    prompt_tokens=12, completion_tokens=120, token_count_source="usage", finish_reason="length",
    energy_wh=0.0375, energy_net_wh=0.0125, energy_per_token_wh=0.0003125,
    components=[ComponentEnergy("cpu", 0.0375, "counter", "RAPL package")], avg_power_w=54.0, peak_power_w=61.5,
    cpu_percent_avg=88.5, ram_used_mb_peak=812.0, quantization="Q8_0", quantization_source="gguf", temperature=0.0,
    max_tokens=120, seed=42, response="=SUM(A1) qubits are " + "x" * 300, environment={"cpu": "Test CPU", "ram_gb": 8},
    quality_score=72.5, quality_method="judge", quality_detail={"judge": "rubric"}, notes="first",
    trace=[TracePoint(0.0, 80.0, 800.0, 50.0), TracePoint(0.5, 90.0, 812.0, 58.0)],
)
failed = RunResult(
    id="11111111-aaaa-4bbb-8ccc-000000000002", batch_id="batch-old", created_at=datetime(2026, 11, 20, 9, 31, tzinfo=timezone.utc),
    model="llama3:8b", backend="ollama", base_url="http://127.0.0.1:11434", prompt=prompt,
    prompt_hash=prompt_hash(prompt), status="cancelled", error="HTTP 500: model 'llama3:8b' not found",
)
with tempfile.TemporaryDirectory() as folder:
    original = Path(folder) / "envirollm_benchmarks.csv"
    with open(original, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "Model", "Timestamp", "Status", "Source", "Energy (Wh)", "Energy/Token (Wh)",
                         "Duration (s)", "Speed (tok/s)", "Quality Score", "CPU %", "Memory %", "Power (W)", "Prompt",
                         "Response Preview"])
        writer.writerow(["11111111-aaaa-4bbb-8ccc-000000000003", "gemma3:1b", "2025-10-02T14:03:07.123456+00:00",
                         "completed", "ollama", 0.457, "0.000583", 6.43, 121.9, 75.0, 12.5, 61.2, 255.9, prompt,
                         "Quantum computing uses qubits"])
    store = Store(Path(folder) / "old.duckdb")
    store.add_runs([measured, failed])
    store.import_file(original)
    for fmt in ("csv", "parquet", "json"):
        store.export(out / f"v2.{fmt}", fmt)
