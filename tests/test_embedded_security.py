"""The embedded Redis on a shared host (issue 22.2) and after a crash (issue 19).

A state path too long for a unix socket used to put it on 127.0.0.1:<port> with no
password: any local user could `CONFIG SET dir` + `SAVE` a file of their choosing as
the service user, FLUSHALL, or read every click.  And it kept only RDB snapshots
(`save 900 1`): a kill -9 lost everything written since the last one.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest
import redis

from banner_server.clients.embedded import DISABLED_COMMANDS, EmbeddedRedis

pytestmark = pytest.mark.slow


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def long_state(tmp_path):
    """A state folder whose socket path is past the AF_UNIX limit: the TCP fallback."""
    state = tmp_path / ("deep-" * 20) / "state"
    assert len(str(state / "redis.sock")) > 108
    emb = EmbeddedRedis(state)
    yield emb
    emb.stop()


@pytest.fixture
def short_state(tmp_path_factory):
    # Short: the unix socket lives here (108-byte limit).
    import tempfile
    state = Path(tempfile.mkdtemp(prefix="bse-", dir="/tmp")) / "state"
    emb = EmbeddedRedis(state)
    yield emb
    emb.stop()
    import shutil
    shutil.rmtree(state.parent, ignore_errors=True)


def test_tcp_fallback_requires_the_generated_password(long_state):
    url = long_state.ensure_running()
    assert url.startswith("redis://:") and "@127.0.0.1:" in url
    port = int(url.rsplit(":", 1)[1].split("/")[0])

    anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):  # NOAUTH
        anonymous.set("k", "v")
    with pytest.raises(redis.AuthenticationError):
        anonymous.execute_command("CONFIG", "SET", "dir", "/tmp")
    with pytest.raises(redis.AuthenticationError):
        anonymous.flushall()
    anonymous.close()

    # The password is the file's, made once; every command finds it through redis.url.
    password = (long_state.state_dir / "redis.password").read_text().strip()
    assert len(password) >= 32 and f":{password}@" in url
    assert long_state.running_url() == url
    client = redis.Redis.from_url(url)
    assert client.set("k", "v") and client.get("k") == b"v"
    client.close()

    # The same password after a restart (and the data, through the stop's save).
    assert long_state.stop()
    url2 = long_state.ensure_running()
    assert f":{password}@" in url2
    assert redis.Redis.from_url(url2).get("k") == b"v"


def test_dangerous_commands_refused_even_with_the_password(long_state, tmp_path):
    client = redis.Redis.from_url(long_state.ensure_running())
    target = tmp_path / "planted"
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.execute_command("CONFIG", "SET", "dir", str(tmp_path))
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.execute_command("CONFIG", "GET", "dir")
    for command in DISABLED_COMMANDS:
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command(command, "HELP")
    assert not target.exists()
    # What the project itself sends still works: INFO (liveness), BGSAVE (after a
    # load), SHUTDOWN (`banners redis stop`).
    assert client.info("server")["config_file"] == str(long_state.conffile)
    client.bgsave()
    client.close()
    assert long_state.stop() and long_state.pid() is None


def test_state_folder_and_files_are_private(long_state, short_state):
    for emb in (long_state, short_state):
        url = emb.ensure_running()
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        client.save()
        client.close()
        state = emb.state_dir
        assert mode(state) == 0o700
        names = ["redis.conf", "redis.url", "redis.pid", "redis.log", "redis.lock", "dump.rdb", "appendonly.aof"]
        if emb is long_state:
            names.append("redis.password")
        else:
            assert mode(state / "redis.sock") & 0o077 == 0  # unixsocketperm 700
            assert url.startswith("unix://") and not (state / "redis.password").exists()
        for name in names:
            assert mode(state / name) == 0o600, (name, oct(mode(state / name)))


def test_files_of_an_older_version_are_made_private(short_state):
    state = short_state.state_dir
    state.mkdir(parents=True)
    (state / "redis.log").write_text("old\n")
    os.chmod(state / "redis.log", 0o644)
    short_state.ensure_running()
    assert mode(state / "redis.log") == 0o600


def _aof_flushed(client) -> bool:
    info = client.info("persistence")
    return info["aof_enabled"] == 1 and info["aof_rewrite_in_progress"] == 0 and \
        info.get("aof_buffer_length", 0) == 0 and info.get("aof_pending_bio_fsync", 0) == 0


def test_writes_survive_a_kill_9_through_the_append_only_file(short_state):
    url = short_state.ensure_running()
    client = redis.Redis.from_url(url)
    assert client.info("persistence")["aof_enabled"] == 1
    # No snapshot rule fires for a handful of writes (save 900 1 is 15 minutes away).
    for i in range(50):
        client.set(f"click:{i}", i)
    # The AOF write and its fsync (every second) are done: what a crash may not lose.
    deadline = time.monotonic() + 10
    while not _aof_flushed(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    client.close()
    pid = short_state.pid()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)

    url = short_state.ensure_running()  # the path every command takes
    assert short_state.pid() not in (None, pid)
    client = redis.Redis.from_url(url)
    assert [int(client.get(f"click:{i}")) for i in range(50)] == list(range(50))
    cfg = short_state.conffile.read_text()
    assert "stop-writes-on-bgsave-error no" in cfg and "appendfsync everysec" in cfg
    client.close()


def test_a_snapshot_only_state_folder_keeps_its_data_when_the_aof_comes_in(short_state):
    """Redis 6 with `appendonly yes` and no AOF starts empty; an upgraded state folder
    has only dump.rdb, which must become the AOF."""
    url = short_state.ensure_running()
    client = redis.Redis.from_url(url)
    client.set("published", "v1")
    client.close()
    short_state.stop()  # saves dump.rdb
    state = short_state.state_dir
    (state / "appendonly.aof").unlink()  # as an older version left it
    assert (state / "dump.rdb").exists()
    client = redis.Redis.from_url(short_state.ensure_running())
    assert client.get("published") == b"v1"
    assert mode(state / "appendonly.aof") == 0o600
    client.close()
