"""The embedded Redis on a full disk (issue 19): a real tmpfs of a few MB under the
state folder (root only: skipped elsewhere).  A load never says "published" for a
version Redis cannot keep, the version serving before keeps serving, nothing ends in
a traceback, and freeing the disk is all it takes to load again."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from banner_server.clients.embedded import EmbeddedRedis
from tests.test_cli import CLICKS, CONVS, IMPS, banners, embedded_env, write

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk():
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    root = Path(tempfile.mkdtemp(prefix="bfd-", dir="/tmp"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)],
                      capture_output=True).returncode:
        pytest.skip("this machine refuses to mount a tmpfs")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def data_set(root: Path, banner: int) -> Path:
    for q in (1, 2, 3, 4):
        write(root, f"{q}/impressions_{q}.csv", IMPS + f"{banner},7\n{banner + 1},7\n")
        write(root, f"{q}/clicks_{q}.csv", CLICKS + f"{q},{banner},7\n")
        write(root, f"{q}/conversions_{q}.csv", CONVS + f"{10 + q},{q},2.5\n")
    return root


def fill(disk: Path) -> Path:
    """Fills the filesystem to its last byte."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


@pytest.mark.parametrize("log_elsewhere", [False, True], ids=["reject-log-on-the-full-disk", "only-redis-full"])
def test_a_full_disk_never_gets_a_load_called_published_and_freeing_it_recovers(small_disk, tmp_path, log_elsewhere):
    state = small_disk / "state"
    env = embedded_env(state)
    try:
        first = banners("load", str(data_set(tmp_path / "a", 100)), "--seed", "1", env=env)
        assert first.returncode == 0, first.stderr
        before = json.loads(banners("status", "--json", env=env).stdout)["version"]
        filler = fill(small_disk)
        log = ["--reject-log", str(tmp_path / "rejected.jsonl")] if log_elsewhere else []
        second = banners("load", str(data_set(tmp_path / "b", 300)), "--seed", "1", "-q", *log, env=env)
        out = second.stdout + second.stderr
        assert second.returncode in (1, 3) and "Traceback" not in out, out
        if second.returncode == 3:  # published, and said not to be safe on disk
            assert "not safe on disk" in out
        else:  # Redis refused the writes: nothing published, the old version serves
            assert "nothing published" in out
            shown_run = banners("show", "--json", "--quarter", "1", env=env)
            assert shown_run.returncode == 0, shown_run.stdout + shown_run.stderr
            shown = json.loads(shown_run.stdout)
            assert {b["banner_id"] for b in shown[0]["banners"]} == {100, 101}
            assert json.loads(banners("status", "--json", env=env).stdout)["version"] == before
        if log_elsewhere:
            # `serve` starts against a Redis that refuses writes, and answers degraded.
            from tests.test_cli import BANNERS as SERVE
            from tests.test_deploy import get, start_server
            from banner_server.clients.embedded import free_port

            port = free_port()
            # Its own state folder elsewhere (the metrics and token files need a disk);
            # the Redis is the full one.
            serve_env = {**env, "BANNERS_STATE_DIR": str(tmp_path / "serve-state"),
                         "BANNERS_REDIS_URL": (state / "redis.url").read_text().strip()}
            server = start_server([*SERVE, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"], serve_env, port)
            try:
                status, _, body = get(port, "/campaigns/7", {"Accept": "application/json"})
                serving = (300, 301) if second.returncode == 3 else (100, 101)  # what the second load left
                assert status == 200 and json.loads(body)["banner_id"] in serving
                status, _, body = get(port, "/readyz")
                assert status == 503 and "MISCONF" not in body.decode()  # a reason code, no backend text
            finally:
                server.stop()
        filler.unlink()  # the disk has room again: Redis writes its file again by itself
        # The failed load's lock could not be released on the full disk: its 10 s lease
        # ends on its own (SPEC: seconds, not minutes), and Redis retries its file.
        for _ in range(40):
            third = banners("load", str(data_set(tmp_path / "c", 500)), "--seed", "1", "-q", env=env)
            if "another load is running" not in third.stderr:
                break
            time.sleep(0.5)
        assert third.returncode == 0, third.stdout + third.stderr
    finally:
        EmbeddedRedis(state).stop()
