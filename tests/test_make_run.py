"""`make run` as a user types it: it checks its port first and never replaces data it
did not bring."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from banner_server.layout.catalog import current_version
from banner_server.clients.embedded import free_port
from tests.serving import KEYS, STANDARD, publish_rows

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def make_run(redis_proc, tmp_path, *args):
    env = {**os.environ, "BANNERS_REDIS_URL": redis_proc.url, "BANNERS_STATE_DIR": str(tmp_path)}
    return subprocess.Popen(["make", "--no-print-directory", "run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def test_a_busy_port_stops_make_run_before_anything_is_loaded(redis_proc, real_redis, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = make_run(redis_proc, tmp_path, f"PORT={busy.getsockname()[1]}")
        out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode != 0 and "cannot listen on" in out and "Address already in use" in out
    assert current_version(real_redis, KEYS) is None  # no sample data was loaded


def test_make_run_serves_what_is_published_and_logs_requests(redis_proc, real_redis, tmp_path):
    version = publish_rows(real_redis, STANDARD)
    port = free_port()
    proc = make_run(redis_proc, tmp_path, f"PORT={port}")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /campaigns/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    reply = s.recv(100)
                break
            except OSError:
                time.sleep(0.2)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=30)[0].decode()
    assert current_version(real_redis, KEYS) == version  # not replaced by the sample data
    assert "serving what is already published" in out
    assert '"GET /campaigns/7 HTTP/1.1" 200' in out  # the request log on standard output
