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

from banner_server.clients.embedded import free_port, redis_server_binary  # noqa: E402

REAL_DATA = ROOT.parent / "shared" / "datachef" / "csv"
RESULTS_DIR = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent


# The operators' token of the servers the benches start (/metrics wants it).
ADMIN_TOKEN = "bench-admin-token-0123456789"

class Workspace:
    """A temporary folder holding a private Redis and whatever the run writes."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="banners-bench-"))
        self.procs: list[subprocess.Popen] = []
        self.redis_url = None
        self.masters: dict[int, subprocess.Popen] = {}  # port -> gunicorn master

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

    def start_server(self, workers: int = 2, extra=(), wait: bool = True, env: dict | None = None) -> int:
        """`banners serve` on a free port; its gunicorn master is self.masters[port]."""
        port = free_port()
        env = {**os.environ, "BANNERS_STATE_DIR": str(self.dir / "state"), "BANNERS_ADMIN_TOKEN": ADMIN_TOKEN,
               **(env or {})}
        self._spawn("server", port, [str(BIN / "banners"), "serve", "--bind", f"127.0.0.1:{port}", "--workers",
                                     str(workers), "--redis-url", self.redis_url, *extra], env)
        if wait:
            self.wait_up(port, "/readyz")
        return port

    def start_app(self, module: str, workers: int = 2, wait: bool = True) -> int:
        """A bench/ WSGI app on the server's own stack: gunicorn with the project's
        gunicorn.conf.py (its worker class, SO_REUSEPORT, keep-alive...), the app in
        place of the server's, the server's Redis settings in BANNERS_* variables."""
        port = free_port()
        env = {**os.environ, "BANNERS_REDIS_URL": self.redis_url or ""}
        self._spawn(module, port, [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "-w", str(workers),
                                   "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT / "bench"),
                                   f"{module}:application"], env)
        if wait:
            self.wait_up(port, "/healthz")
        return port

    def start_reference(self, workers: int = 2) -> int:
        return self.start_app("reference_app", workers)

    def _spawn(self, name: str, port: int, cmd: list, env: dict) -> None:
        log = open(self.dir / f"{name}-{port}.log", "wb")
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(p)
        self.masters[port] = p

    def wait_up(self, port: int, path: str, timeout: float = 30) -> None:
        """Until `path` answers 200; a server that exits first fails at once, with its log."""
        p = self.masters[port]

        def up():
            if p.poll() is not None:
                logs = sorted(self.dir.glob(f"*-{port}.log"))
                tail = logs[0].read_text(errors="replace")[-3000:] if logs else ""
                raise SystemExit(f"{' '.join(map(str, p.args))} exited with {p.returncode}:\n{tail}")
            return http_ok(port, path)
        wait_for(up, timeout, f"server on port {port}")

    def worker_pids(self, port: int, count: int | None = None, timeout: float = 30) -> list[int]:
        """The gunicorn workers (children of the master) of the server on `port`; with
        `count`, once that many are up (the first one answers before the last boots)."""
        pids = children(self.masters[port].pid)
        if count is not None:
            def all_up():
                nonlocal pids
                pids = children(self.masters[port].pid)
                return len(pids) >= count
            wait_for(all_up, timeout, f"{count} workers on port {port}")
        return pids


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


def http_ok(port: int, path: str) -> bool:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path)
        return c.getresponse().status == 200
    except OSError:
        return False


def wait_http(port: int, path: str, timeout: float = 30) -> None:
    wait_for(lambda: http_ok(port, path), timeout, f"server on port {port}")


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return sorted(out)


def proc_stats(pids) -> dict:
    """CPU seconds (user, system) and context switches (voluntary: the process waited;
    nonvoluntary: it was preempted) of these processes so far; gone ones count 0."""
    tick = os.sysconf("SC_CLK_TCK")
    out = dict.fromkeys(("user", "system", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"), 0.0)
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        out["user"] += int(fields[11]) / tick  # utime and stime: fields 14 and 15 of stat
        out["system"] += int(fields[12]) / tick
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in out:
                out[key] += int(value)
    return out


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
