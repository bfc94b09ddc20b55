"""Rollback under load: the real `banners serve` (gunicorn + meinheld workers) over a
real redis-server, hammered while the real `banners load` and `banners rollback`
switch the version back and forth."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.harness import RedisProcess
from tests.test_e2e import ROOT, Server
from tests.test_loader import CLICKS, IMPS, write

# Campaign 7 with fewer than 5 banners selects all of them, whatever the seed.
BANNERS = {"v1": (101, 102, 103), "v2": (201, 202, 203)}


def data_dir(root, banners):
    for q in (1, 2, 3, 4):  # q impressions of each banner: files of equal bytes would be rejected
        write(root, f"{q}/impressions_{q}.csv", IMPS + "".join(f"{b},7\n" for b in banners) * q)
        write(root, f"{q}/clicks_{q}.csv", CLICKS + "".join(f"{i},{b},7\n" for i, b in enumerate(banners)))
    return root


def banners_cli(url, *args):
    p = subprocess.run([sys.executable, "-m", "cli", *args, "--redis-url", url], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def redis_rb():
    p = RedisProcess().start()
    yield p
    p.close()


def test_rollback_under_load_no_failure_no_mixing(redis_rb, tmp_path):
    url = redis_rb.url
    dirs = {name: data_dir(tmp_path / name, ids) for name, ids in BANNERS.items()}
    out = banners_cli(url, "load", str(dirs["v1"]), "-q", "--reject-log", os.devnull)
    versions = {"v1": out.split()[2]}  # "published version V (seed ..."
    server = Server(url, tmp_path / "state", "--quarter", "1")
    results, failures, stop = [], [], threading.Event()

    def hammer():
        conn = server.connection()
        while not stop.is_set():
            try:
                status, headers, body = server.get("/campaigns/7", {"Accept": "application/json"}, conn)
                results.append((time.monotonic(), status, headers.get("X-Banners-Version"), body))
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                conn.close()
                conn = server.connection()
        conn.close()

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    # [version name, when the command switching to it returned, when the next one started]
    stages = [["v1", time.monotonic(), None]]

    def switch(name, *args):
        time.sleep(2.0)  # 1 s to settle, then 1 s where every answer must be of the last version
        stages[-1][2] = time.monotonic()
        out = banners_cli(url, *args)
        stages.append([name, time.monotonic(), None])
        return out

    try:
        for t in threads:
            t.start()
        out = switch("v2", "load", str(dirs["v2"]), "-q", "--reject-log", os.devnull)
        versions["v2"] = out.split()[2]
        out = switch("v1", "rollback")  # default: the version loaded before, v1
        assert out.startswith(f"version {versions['v1']} is current again (was {versions['v2']})")
        switch("v2", "rollback", versions["v2"])  # forward again
        time.sleep(2.0)
        stages[-1][2] = time.monotonic()
        ready = [server.get("/readyz?detail=1") for _ in range(6)]  # new connections: both workers
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    assert not failures and results and all(r[1] == 200 for r in results), failures[:3]
    by_version = {versions[name]: set(ids) for name, ids in BANNERS.items()}
    for _, _, ver, body in results:
        assert json.loads(body)["banner_id"] in by_version[ver]  # the banner belongs to the version it names
    for name, switched, next_started in stages:
        settled = {r[2] for r in results if switched + 1.0 < r[0] < next_started}
        assert settled == {versions[name]}, (name, settled)
    assert all(r[0] == 200 and json.loads(r[2])["version"] == versions["v2"] for r in ready)
