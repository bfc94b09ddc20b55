"""The bench scripts still start and parse their own output (benchmarks are not tests:
these check the tools, not the numbers)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import throughput  # noqa: E402


def test_wrk_summary_line_is_parsed():
    out = ("Running 1s test\n  2 threads and 64 connections\n"
           'BENCH {"requests": 2000, "duration_us": 1000000, "p50_us": 1500, "p99_us": 9000, "max_us": 12000, '
           '"connect": 0, "read": 1, "write": 0, "status": 2, "timeout": 0}\n')
    got = throughput.parse(out)
    assert got == {"rps": 2000.0, "p50_ms": 1.5, "p99_ms": 9.0, "errors": 3, "requests": 2000}
    with pytest.raises(ValueError):
        throughput.parse("no summary here")


def test_bench_scripts_smoke():
    """Every bench script runs its --smoke mode, all at once: they spend most of their
    time starting servers and waiting on them, so in parallel the suite pays ~15 s
    instead of ~35 s."""
    jobs = {
        "loader": ["loader_bench.py", "--smoke"],
        "stress": ["stress.py", "--smoke"],
        "profile": ["profile_request.py", "-n", "500"],
    }
    if shutil.which("wrk"):  # make bench installs it; the smoke test does not
        jobs["throughput"] = ["throughput.py", "--smoke"]
    procs = {name: subprocess.Popen([sys.executable, str(BENCH / args[0]), *args[1:]], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name, args in jobs.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, (name, stdout[-2000:] + stderr[-2000:])
        out[name] = stdout
    assert "sample x0.02" in out["loader"] and "ratio" in out["loader"] and "25x files" in out["loader"]
    assert '"failures": 0' in out["stress"] and '"requests": 0,' not in out["stress"]
    assert "bar (>= 5,000 requests/minute, 0 failures): " in out["stress"]  # the rate is a bench's, not a test's
    assert "us per request" in out["profile"]
    if "throughput" in out:
        table = out["throughput"]
        for app in ("ceiling", "floor", "script", "server"):
            assert f"\n{app} " in table, app
        for ratio in ("server/ceiling", "server/floor", "script/floor", "floor/ceiling"):
            assert f"ratio {ratio}: " in table, ratio
        assert "bar (server >= 0.75 x floor, 0 errors, every answer through Redis): " in table
