"""Shared by the bench scripts: a private redis-server, a loaded data set, servers."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banner_server.embedded_redis import free_port, redis_server_binary  # noqa: E402

REAL_DATA = ROOT.parent / "shared" / "datachef" / "csv"
RESULTS_DIR = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent


class Workspace:
    """A temporary folder holding a private Redis and whatever the run writes."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="banners-bench-"))
        self.procs: list[subprocess.Popen] = []
        self.redis_url = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            stop(p)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_redis(self) -> str:
        sock = self.dir / "redis.sock"
        p = subprocess.Popen([redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "",
                              "--appendonly", "no", "--dir", str(self.dir)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_for(lambda: sock.exists(), 10, "redis-server")
        self.redis_url = f"unix://{sock}"
        return self.redis_url

    def data_dir(self, scale: float = 1.0) -> Path:
        """The real set when it is there, else sample data of the same size."""
        if REAL_DATA.is_dir() and scale == 1.0:
            return REAL_DATA
        out = self.dir / f"sample-{scale}"
        run([str(BIN / "banners"), "sample-data", str(out), "--scale", str(scale)])
        return out

    def load(self, data: Path) -> None:
        p = subprocess.run([str(BIN / "banners"), "load", str(data), "--seed", "1", "-q",
                            "--redis-url", self.redis_url, "--reject-log", str(self.dir / "rejects.jsonl")],
                           capture_output=True, text=True)
        if p.returncode not in (0, 3):
            raise SystemExit(f"load failed: {p.stdout}{p.stderr}")

    def start_server(self, workers: int = 2, extra=()) -> int:
        port = free_port()
        env = {**os.environ, "BANNERS_STATE_DIR": str(self.dir / "state")}
        p = subprocess.Popen([str(BIN / "banners"), "serve", "--bind", f"127.0.0.1:{port}", "--workers",
                              str(workers), "--redis-url", self.redis_url, *extra],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        wait_http(port, "/readyz")
        return port

    def start_reference(self, workers: int = 2) -> int:
        port = free_port()
        p = subprocess.Popen([str(BIN / "gunicorn"), "-k", "banner_server.worker.MeinheldWorker", "-w", str(workers),
                              "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT / "bench"), "--no-control-socket",
                              "reference_app:application"],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        wait_http(port, "/healthz")
        return port


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: {p.stderr[-2000:]}")
    return p.stdout


def stop(p: subprocess.Popen) -> None:
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except (PermissionError, ProcessLookupError):
        p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not come up within {timeout}s")


def wait_http(port: int, path: str, timeout: float = 30) -> None:
    def ok():
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            return c.getresponse().status == 200
        except OSError:
            return False
    wait_for(ok, timeout, f"server on port {port}")


def machine() -> str:
    import platform

    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model or platform.processor()}, Python {platform.python_version()}"
