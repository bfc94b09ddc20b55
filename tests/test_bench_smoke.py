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


def run(script, *args, timeout=240):
    p = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p.stdout


def test_loader_bench_smoke():
    out = run("loader_bench.py", "--smoke")
    assert "sample x0.02" in out and "ratio" in out and "25x files" in out


def test_stress_smoke_runs_locust_and_validates():
    out = run("stress.py", "--smoke")
    assert '"failures": 0' in out and "bar (>= 5,000 requests/minute, 0 failures): met" in out


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench installs it)")
def test_throughput_smoke():
    out = run("throughput.py", "--smoke")
    assert "ratio server/reference" in out


def test_profile_request_runs():
    out = run("profile_request.py", "-n", "500")
    assert "us per request" in out
