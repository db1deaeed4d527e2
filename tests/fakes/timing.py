"""The issue's accuracy bar, held against what the scripted server really did."""

from __future__ import annotations

from tests.fakes.scripted_server import Request, TokenScript


def assert_timing_matches(ttft_s: float, decode_tps: float, request: Request, script: TokenScript) -> None:
    """TTFT within 10 ms + 2 % and decode tokens/s within 2 % of the truth.

    The truth is the server's own record of when each token left (after
    `sendall`), so a scheduling hiccup of the server thread on a busy machine
    moves the truth too; the schedule itself must still be near the script, or
    the fake, not the client, is off.
    """
    true_ttft_s, true_tps = request.true_ttft_s(), request.true_decode_tps()
    assert abs(true_ttft_s - script.ttft_s) <= 0.02 + 0.1 * script.ttft_s, f"the fake missed its schedule: {true_ttft_s}"
    assert abs(true_tps - script.decode_tps) <= 0.1 * script.decode_tps, f"the fake missed its schedule: {true_tps}"
    assert abs(ttft_s - true_ttft_s) <= 0.010 + 0.02 * true_ttft_s, (ttft_s, true_ttft_s)
    assert abs(decode_tps - true_tps) <= 0.02 * true_tps, (decode_tps, true_tps)
