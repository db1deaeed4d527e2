"""A real benchmark batch (scripted server, real sampler) on a machine with an NVIDIA GPU: GPU energy by source.

Run: `PYTHONPATH=. python3 bench/runner_gpu_check.py` (about 15 s). Without a GPU the `gpu:0` component is simply absent.
"""
import json
from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.runner import BenchmarkConfig, run_benchmark
from tests.fakes.scripted_server import ScriptedServer, TokenScript, openai_routes, openai_stream

script = TokenScript([f"w{i} " for i in range(100)], ttft_s=0.2, tokens_per_s=50.0)
with ScriptedServer(openai_routes(["m-q4_k_m"], openai_stream("m-q4_k_m", script))) as server:
    batch = run_benchmark(OpenAIBackend(f"{server.url}/v1"),
                          BenchmarkConfig(models=("m-q4_k_m",), prompts=(Prompt("hi"),), repeat=2, idle_s=2.0))
for run in batch.runs:
    print(json.dumps({"status": run.status, "ttft_s": run.ttft_s, "decode_tps": run.decode_tps, "e2e_s": run.e2e_s,
                      "energy_wh": run.energy_wh, "energy_net_wh": run.energy_net_wh, "avg_power_w": run.avg_power_w,
                      "components": [(c.component, c.energy_wh, c.source) for c in run.components],
                      "server_peak_rss_mb": run.server_peak_rss_mb, "server_gpu_mem_mb": run.server_gpu_mem_mb,
                      "gpus": run.environment.get("gpus")}))
