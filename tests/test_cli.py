"""The `banners` commands end to end against a real redis-server: exit codes, logs, output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from banner_server.embedded_redis import EmbeddedRedis
from tests.test_loader import CLICKS, CONVS, IMPS, write


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    write(root, "1/impressions_1.csv", IMPS + "100,7\n101,7\n")
    write(root, "1/clicks_1.csv", CLICKS + "1,100,7\n2,101,7\n3,101,7\n")
    write(root, "1/conversions_1.csv", CONVS + "10,1,2.5\n")
    return root


def run(runner, redis_proc, *args):
    return runner.invoke(cli.main, [*args, "--redis-url", redis_proc.url], catch_exceptions=False)


def test_load_then_show_json(runner, redis_proc, real_redis, data, tmp_path):
    log = tmp_path / "rej.jsonl"
    res = run(runner, redis_proc, "load", str(data), "--seed", "3", "--reject-log", str(log))
    assert res.exit_code == 0, res.output
    assert "seed: 3" in res.output and "no rejections" in res.output
    assert log.read_text() == ""
    res = run(runner, redis_proc, "show", "--json")
    assert json.loads(res.output) == [{
        "quarter": 1, "campaign_id": 7, "scenario": "revenue_then_clicks", "x": 1,
        "banners": [{"banner_id": 100, "revenue": 2.5, "clicks": 1, "source": "revenue"},
                    {"banner_id": 101, "revenue": 0.0, "clicks": 2, "source": "clicks"}]}]
    res = run(runner, redis_proc, "show", "--quarter", "2", "--json")
    assert json.loads(res.output) == []
    res = run(runner, redis_proc, "show", "--campaign", "7")
    assert "Q1 campaign    7  revenue_then_clicks" in res.output


def test_status_json(runner, redis_proc, real_redis, data):
    assert "nothing published" in run(runner, redis_proc, "status").output
    run(runner, redis_proc, "load", str(data), "--seed", "11", "--reject-log", os.devnull)
    info = json.loads(run(runner, redis_proc, "status", "--json").output)
    assert info["loaded"] and info["seed"] == 11 and info["quarters"] == [1]
    assert [f["path"] for f in info["files"]] == ["1/clicks_1.csv", "1/conversions_1.csv", "1/impressions_1.csv"]
    assert info["files"][0]["rows"] == 3 and info["files"][0]["accepted"] == 3


def test_exit_3_on_invalid_input_and_reject_log_lines(runner, redis_proc, real_redis, data, tmp_path):
    write(data, "1/more.csv", CLICKS + "3,101,7\n3,100,7\nx,1,1\n")
    write(data, "2/clicks_2.csv", (data / "1/clicks_1.csv").read_bytes())
    log = tmp_path / "rej.jsonl"
    res = run(runner, redis_proc, "load", str(data), "--seed", "1", "--reject-log", str(log))
    assert res.exit_code == 3, res.output
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines == [
        {"file": "1/more.csv", "line": 2, "kind": "clicks", "reason": "duplicate_row",
         "detail": "click_id 3 already accepted", "duplicate_of": "1/clicks_1.csv:4"},
        {"file": "1/more.csv", "line": 3, "kind": "clicks", "reason": "conflict",
         "detail": "click_id 3 already accepted with other values", "duplicate_of": "1/clicks_1.csv:4"},
        {"file": "1/more.csv", "line": 4, "kind": "clicks", "reason": "invalid",
         "detail": "click_id is not a non-negative integer: 'x'", "duplicate_of": None},
        {"file": "2/clicks_2.csv", "line": None, "kind": "clicks", "reason": "duplicate_file",
         "detail": "same bytes as 1/clicks_1.csv", "duplicate_of": "1/clicks_1.csv"},
    ]
    assert "4 rejection(s) logged" in res.output
    assert json.loads(run(runner, redis_proc, "show", "--json").output)  # published


def test_duplicates_alone_exit_0(runner, redis_proc, real_redis, data):
    write(data, "1/more.csv", CLICKS + "3,101,7\n")
    res = run(runner, redis_proc, "load", str(data), "--seed", "1", "--reject-log", os.devnull)
    assert res.exit_code == 0


def test_strict_publishes_nothing_and_exits_1(runner, redis_proc, real_redis, data):
    write(data, "1/more.csv", CLICKS + "x,1,1\n")
    res = run(runner, redis_proc, "load", str(data), "--strict", "--reject-log", os.devnull)
    assert res.exit_code == 1 and "--strict" in res.output
    assert "nothing published" in run(runner, redis_proc, "status").output


def test_no_valid_data_exits_1(runner, redis_proc, real_redis, tmp_path):
    write(tmp_path, "d/1/x.csv", "foo\n")
    res = run(runner, redis_proc, "load", str(tmp_path / "d"), "--reject-log", os.devnull)
    assert res.exit_code == 1 and "no valid data" in res.output


def test_redis_unreachable_exits_1_with_message(runner, data, tmp_path):
    res = runner.invoke(cli.main, ["load", str(data), "--redis-url", f"unix://{tmp_path}/nope.sock",
                                   "--reject-log", os.devnull])
    assert res.exit_code == 1
    assert "cannot reach Redis" in res.output and "Traceback" not in res.output


def test_usage_errors_exit_2(runner, tmp_path):
    assert runner.invoke(cli.main, ["load", str(tmp_path / "missing")]).exit_code == 2
    assert runner.invoke(cli.main, ["load"]).exit_code == 2
    assert runner.invoke(cli.main, ["show", "--quarter", "5"]).exit_code == 2
    assert runner.invoke(cli.main, ["load", str(tmp_path), "--seed", "-1"]).exit_code == 2
    # these two raised tracebacks from polars before
    for bad in (["--seed", "-5"], ["--seed", str(2**64)], ["--scale", "1e9"], ["--scale", "0"]):
        res = runner.invoke(cli.main, ["sample-data", str(tmp_path / "s"), *bad])
        assert res.exit_code == 2 and "Invalid value" in res.output, bad


def test_a_malformed_redis_url_is_a_usage_error(runner, tmp_path):
    for url in ("bogus://x", "redis://:s3cret@127.0.0.1:notaport/0"):
        res = runner.invoke(cli.main, ["status", "--redis-url", url])
        assert res.exit_code == 2 and "--redis-url" in res.output and "embedded" not in res.output
        assert "s3cret" not in res.output


def test_sample_data_into_a_folder_it_cannot_write_exits_1(runner, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = runner.invoke(cli.main, ["sample-data", str(blocker / "sub")])  # a file where a folder must go
    assert res.exit_code == 1 and "cannot write the sample data" in res.output
    assert "Traceback" not in res.output


def test_every_command_has_help_with_an_example(runner):
    for cmd in [["sample-data"], ["load"], ["show"], ["status"], ["serve"], ["redis"], ["redis", "start"],
                ["redis", "stop"]]:
        res = runner.invoke(cli.main, [*cmd, "--help"])
        assert res.exit_code == 0 and "Example" in res.output, cmd


def test_sample_data_has_every_scenario_and_a_few_duplicates(runner, redis_proc, real_redis, tmp_path):
    out = tmp_path / "s"
    assert runner.invoke(cli.main, ["sample-data", str(out), "--scale", "0.05"]).exit_code == 0
    log = tmp_path / "r.jsonl"
    res = run(runner, redis_proc, "load", str(out), "--seed", "2", "--reject-log", str(log))
    assert res.exit_code == 0, res.output
    reasons = {json.loads(x)["reason"] for x in log.read_text().splitlines()}
    assert reasons == {"duplicate_row", "conflict"}
    records = json.loads(run(runner, redis_proc, "show", "--json").output)
    assert {r["scenario"] for r in records} == {"top_revenue_10", "top_revenue_x", "revenue_then_clicks", "top_clicks"}
    assert {r["quarter"] for r in records} == {1, 2, 3, 4}
    assert any(len(r["banners"]) < 5 for r in records)


def test_embedded_redis_started_reused_and_stopped(tmp_path, data):
    state = tmp_path / "state"
    env = {**os.environ, "BANNERS_STATE_DIR": str(state)}
    env.pop("BANNERS_REDIS_URL", None)
    banners = [sys.executable, "-m", "cli"]
    cwd = Path(__file__).resolve().parent.parent
    try:
        p = subprocess.run([*banners, "load", str(data), "--seed", "1"], env=env, cwd=cwd, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        emb = EmbeddedRedis(state)
        pid = emb.pid()
        assert pid and (state / "rejected.jsonl").exists()
        p = subprocess.run([*banners, "show", "--json"], env=env, cwd=cwd, capture_output=True, text=True)
        assert json.loads(p.stdout)[0]["campaign_id"] == 7
        assert emb.pid() == pid  # reused, not restarted
        # a restart keeps what was published (RDB written after the load)
        assert emb.stop()
        p = subprocess.run([*banners, "show", "--json"], env=env, cwd=cwd, capture_output=True, text=True)
        assert json.loads(p.stdout)[0]["campaign_id"] == 7
        # stale pid file and socket are cleaned up
        emb.stop()
        (state / "redis.pid").write_text("999999\n")
        (state / "redis.sock").write_text("")
        p = subprocess.run([*banners, "status", "--json"], env=env, cwd=cwd, capture_output=True, text=True)
        assert p.returncode == 0 and json.loads(p.stdout)["loaded"], p.stderr
    finally:
        subprocess.run([*banners, "redis", "stop"], env=env, cwd=cwd, capture_output=True)
    assert EmbeddedRedis(state).pid() is None


def test_serve_refuses_an_address_it_cannot_listen_on(runner, redis_proc, tmp_path):
    """With reuse_port the workers bind; without this check a bad address made them
    exit and be rebooted forever."""
    import socket

    held = socket.create_server(("127.0.0.1", 0))  # no SO_REUSEPORT, like any other program
    try:
        port = held.getsockname()[1]
        res = run(runner, redis_proc, "serve", "--bind", f"127.0.0.1:{port}")
        assert res.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in res.output
        assert "in use" in res.output
    finally:
        held.close()
    res = run(runner, redis_proc, "serve", "--bind", "no-such-host.invalid:8000")
    assert res.exit_code == 1 and "unknown host 'no-such-host.invalid'" in res.output
    res = run(runner, redis_proc, "serve", "--bind", f"unix:{tmp_path}/missing/http.sock")
    assert res.exit_code == 1 and "does not exist" in res.output
    for bad in ("127.0.0.1:80x", "127.0.0.1:0", "127.0.0.1:70000"):
        res = run(runner, redis_proc, "serve", "--bind", bad)
        assert res.exit_code == 2 and "--bind" in res.output, bad


def test_bind_parsing():
    from banner_server.bind import parse_bind

    assert parse_bind("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_bind("localhost") == ("localhost", 8000)  # gunicorn's default port
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    assert parse_bind(":9000") == ("0.0.0.0", 9000)
    assert parse_bind("unix:/run/banners.sock") is None and parse_bind("fd://3") is None


def test_serve_checks_the_settings_before_starting_workers(runner, redis_proc):
    from banner_server.embedded_redis import free_port

    res = runner.invoke(cli.main, ["serve", "--bind", f"127.0.0.1:{free_port()}", "--redis-url", redis_proc.url],
                        env={"BANNERS_REDIS_TIMEOUT": "fast"})
    assert res.exit_code == 2 and "BANNERS_REDIS_TIMEOUT='fast' is not a number" in res.output
