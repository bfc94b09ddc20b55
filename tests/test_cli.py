"""The `banners` commands end to end against a real redis-server: exit codes, logs, output."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from banner_server import cli
from banner_server.cli import data as cli_data
from banner_server.clients.embedded import EmbeddedRedis
from tests.test_loader import CLICKS, CONVS, IMPS, write
from tests.serving import KEYS


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


@pytest.fixture
def full(data):
    """`data` with a little of every quarter: a load of it publishes all four."""
    for q in (2, 3, 4):
        write(data, f"{q}/impressions_{q}.csv", IMPS + f"10{q},7\n")
    return data


def run(runner, redis_proc, *args):
    return runner.invoke(cli.main, [*args, "--redis-url", redis_proc.url], catch_exceptions=False)


def test_load_then_show_json(runner, redis_proc, real_redis, full, tmp_path):
    log = tmp_path / "rej.jsonl"
    res = run(runner, redis_proc, "load", str(full), "--seed", "3", "--reject-log", str(log))
    assert res.exit_code == 0, res.output
    assert "seed: 3" in res.output and "no rejections" in res.output
    assert log.read_text() == ""
    res = run(runner, redis_proc, "show", "--json", "--quarter", "1")
    assert json.loads(res.output) == [{
        "quarter": 1, "campaign_id": 7, "scenario": "revenue_then_clicks", "x": 1,
        "banners": [{"banner_id": 100, "revenue": 2.5, "clicks": 1, "source": "revenue"},
                    {"banner_id": 101, "revenue": 0.0, "clicks": 2, "source": "clicks"}]}]
    assert [r["quarter"] for r in json.loads(run(runner, redis_proc, "show", "--json").output)] == [1, 2, 3, 4]


def test_show_prints_a_table_one_banner_per_line(runner, redis_proc, real_redis, sample_dir):
    assert run(runner, redis_proc, "load", str(sample_dir(3, 0.02)), "-q", "--reject-log", os.devnull).exit_code == 0
    records = json.loads(run(runner, redis_proc, "show", "--json").output)
    res = run(runner, redis_proc, "show")
    lines = res.stdout.splitlines()
    assert res.exit_code == 0
    assert lines[0].split() == ["quarter", "campaign", "scenario", "x", "rank", "banner", "source", "revenue",
                                "clicks"]
    assert len(lines) == 1 + sum(len(r["banners"]) for r in records)
    assert max(map(len, lines)) < 100  # was one line of up to 400 characters per campaign
    first = records[0]
    assert lines[1].split() == [str(first["quarter"]), str(first["campaign_id"]), first["scenario"],
                                str(first["x"]), "1", str(first["banners"][0]["banner_id"]),
                                first["banners"][0]["source"], cli_data.money(first["banners"][0]["revenue"]),
                                str(first["banners"][0]["clicks"])]


def test_show_of_nothing_that_matches_exits_1(runner, redis_proc, real_redis, data):
    run(runner, redis_proc, "load", str(data), "-q", "--reject-log", os.devnull)
    res = run(runner, redis_proc, "show", "--campaign", "999")
    assert res.exit_code == 1 and "no selection for campaign 999" in res.stderr
    res = run(runner, redis_proc, "show", "--quarter", "2", "--campaign", "7", "--json")
    assert res.exit_code == 1 and json.loads(res.stdout) == [] and "quarter 2 and campaign 7" in res.stderr


def test_read_only_commands_never_start_the_embedded_redis(runner, tmp_path):
    typo = tmp_path / "typo"
    for cmd in (["status"], ["show"], ["status", "--json"]):
        res = runner.invoke(cli.main, [*cmd, "--state-dir", str(typo)], env={"BANNERS_REDIS_URL": None})
        assert res.exit_code == 1, (cmd, res.output)
        assert f"no embedded Redis is running in the state folder {typo}" in res.stderr
        assert "--redis-url" in res.stderr and "Traceback" not in res.output
    assert not typo.exists()  # was created, with a new empty Redis in it
    res = runner.invoke(cli.main, ["redis", "stop", "--state-dir", str(typo)])
    assert res.exit_code == 0 and "not running" in res.output and not typo.exists()


def test_load_checks_redis_before_reading_any_file(runner, full, tmp_path):
    log = tmp_path / "rej.jsonl"
    res = runner.invoke(cli.main, ["load", str(full), "--redis-url", f"unix://{tmp_path}/nope.sock",
                                   "--reject-log", str(log)])
    assert res.exit_code == 1 and "cannot reach Redis" in res.stderr
    assert res.stdout == "" and not log.exists()  # no seed, no table: nothing was read


def test_load_of_a_folder_without_csv_files_says_so(runner, redis_proc, real_redis, tmp_path):
    (tmp_path / "empty" / "1").mkdir(parents=True)
    (tmp_path / "empty" / "1" / "notes.txt").write_text("x")
    res = run(runner, redis_proc, "load", str(tmp_path / "empty"), "--reject-log", str(tmp_path / "r.jsonl"))
    assert res.exit_code == 1
    assert f"no *.csv files under {tmp_path / 'empty'}" in res.stderr
    assert res.stdout == "" and not (tmp_path / "r.jsonl").exists()


def test_quiet_load_prints_problems_and_one_final_line(runner, redis_proc, real_redis, full):
    res = run(runner, redis_proc, "load", str(full), "-q", "--seed", "5", "--reject-log", os.devnull)
    assert res.exit_code == 0 and res.stderr == ""
    assert res.stdout.count("\n") == 1 and res.stdout.startswith("published version ")
    assert "(seed 5)" in res.stdout
    write(full, "2/bad.csv", CLICKS + "x,1,1\n")
    res = run(runner, redis_proc, "load", str(full), "-q", "--reject-log", os.devnull)
    assert res.exit_code == 3 and res.stdout.count("\n") == 1
    assert res.stderr.startswith("warning: 1 invalid input(s) rejected")


def test_a_load_missing_a_quarter_says_so_and_exits_3(runner, redis_proc, real_redis, full):
    (full / "3" / "impressions_3.csv").unlink()
    res = run(runner, redis_proc, "load", str(full), "--reject-log", os.devnull)
    assert res.exit_code == 3, res.output
    assert f"quarter 3 has no data: no file of quarter 3 under {full}" in res.stderr
    assert "minutes 30-44" in res.stderr and "quarter 2 has" not in res.stderr
    assert "published version" in res.stdout
    assert {r["quarter"] for r in json.loads(run(runner, redis_proc, "show", "--json").output)} == {1, 2, 4}
    write(full, "3/impressions_3.csv", "no,header,here\n1,2,3\n")
    res = run(runner, redis_proc, "load", str(full), "--reject-log", os.devnull)
    assert res.exit_code == 3 and "quarter 3 has no data: all 1 file(s) of quarter 3 were rejected" in res.stderr


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


def test_duplicates_alone_exit_0(runner, redis_proc, real_redis, full):
    write(full, "1/more.csv", CLICKS + "3,101,7\n")
    res = run(runner, redis_proc, "load", str(full), "--seed", "1", "--reject-log", os.devnull)
    assert res.exit_code == 0


def test_strict_publishes_nothing_and_exits_1(runner, redis_proc, real_redis, data):
    write(data, "1/more.csv", CLICKS + "x,1,1\n")
    res = run(runner, redis_proc, "load", str(data), "--strict", "--reject-log", os.devnull)
    assert res.exit_code == 1 and "--strict" in res.output
    assert "nothing published" in run(runner, redis_proc, "status").output


def test_a_load_that_publishes_nothing_leaves_the_reject_log_in_place(runner, redis_proc, real_redis, full,
                                                                        tmp_path):
    log = tmp_path / "rej.jsonl"
    write(full, "1/more.csv", CLICKS + "3,101,7\n")  # one duplicate_row: published, exit 0
    assert run(runner, redis_proc, "load", str(full), "--reject-log", str(log)).exit_code == 0
    serving = log.read_text()
    assert [json.loads(x)["reason"] for x in serving.splitlines()] == ["duplicate_row"]
    write(full, "2/bad.csv", CLICKS + "x,1,1\n")
    res = run(runner, redis_proc, "load", str(full), "--strict", "--reject-log", str(log))
    assert res.exit_code == 1 and log.read_text() == serving  # was rewritten by the load that published nothing
    failed = tmp_path / "rej.failed.jsonl"
    assert f"this load's 2 rejection(s) are in {failed}" in res.stderr
    assert [json.loads(x)["reason"] for x in failed.read_text().splitlines()] == ["duplicate_row", "invalid"]
    res = runner.invoke(cli.main, ["load", str(full), "--reject-log", str(log),
                                   "--redis-url", f"unix://{tmp_path}/nope.sock"])
    assert res.exit_code == 1 and log.read_text() == serving
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "rej.failed.jsonl", "rej.jsonl"]  # no temp left
    res = run(runner, redis_proc, "load", str(full), "--reject-log", str(log))
    assert res.exit_code == 3 and len(log.read_text().splitlines()) == 2  # published: the log follows


def test_default_reject_log_is_in_the_state_folder(runner, redis_proc, real_redis, full, tmp_path):
    state = tmp_path / "state"
    write(full, "1/more.csv", CLICKS + "3,101,7\n")
    res = run(runner, redis_proc, "load", str(full), "--state-dir", str(state))
    assert res.exit_code == 0 and f"1 rejection(s) logged to {state / 'rejected.jsonl'}" in res.stdout
    assert len((state / "rejected.jsonl").read_text().splitlines()) == 1


def test_a_reject_log_in_a_missing_folder_is_a_usage_error(runner, redis_proc, real_redis, full, tmp_path):
    res = run(runner, redis_proc, "load", str(full), "--reject-log", str(tmp_path / "no" / "such" / "r.jsonl"))
    assert res.exit_code == 2 and "--reject-log" in res.stderr and "does not exist" in res.stderr
    assert not (tmp_path / "no").exists()
    assert real_redis.get(KEYS.current) is None


def test_old_version_cleanup_failing_after_the_switch_still_reports_published(runner, redis_proc, real_redis, full,
                                                                             monkeypatch):
    import redis as redis_lib

    import loader.publish as publish_mod

    for _ in range(publish_mod.KEEP_VERSIONS):  # the next load has one to remove
        assert run(runner, redis_proc, "load", str(full), "-q", "--reject-log", os.devnull).exit_code == 0
    real_delete = publish_mod._delete_version

    def lost_connection(*args):
        raise redis_lib.ConnectionError("Connection reset by peer")

    monkeypatch.setattr(publish_mod, "_delete_version", lost_connection)
    res = run(runner, redis_proc, "load", str(full), "-q", "--reject-log", os.devnull)
    current = real_redis.get(KEYS.current).decode()
    assert res.exit_code == 0, res.output  # was 1, "the previous data keeps serving": untrue
    assert res.stdout.startswith(f"published version {current} ")
    assert "removing the old versions failed (Connection reset by peer); the next load removes them" in res.stderr
    assert len(real_redis.smembers(KEYS.versions)) == publish_mod.KEEP_VERSIONS + 1
    monkeypatch.setattr(publish_mod, "_delete_version", real_delete)
    assert run(runner, redis_proc, "load", str(full), "-q", "--reject-log", os.devnull).exit_code == 0
    assert len(real_redis.smembers(KEYS.versions)) == publish_mod.KEEP_VERSIONS


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
    for cmd in [["sample-data"], ["load"], ["show"], ["status"], ["versions"], ["rollback"], ["serve"], ["redis"],
                ["redis", "start"], ["redis", "stop"]]:
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


BANNERS = [sys.executable, "-m", "cli"]
ROOT = Path(__file__).resolve().parent.parent


def banners(*args, env=None, **kw):
    """`banners ARGS` as its own process (what a user runs)."""
    return subprocess.run([*BANNERS, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, **kw)


def embedded_env(state):
    env = {**os.environ, "BANNERS_STATE_DIR": str(state)}
    env.pop("BANNERS_REDIS_URL", None)
    return env


def test_embedded_redis_started_reused_and_stopped(tmp_path, full):
    state = tmp_path / "state"
    env = embedded_env(state)
    try:
        p = banners("load", str(full), "--seed", "1", env=env)
        assert p.returncode == 0, p.stderr
        emb = EmbeddedRedis(state)
        pid = emb.pid()
        assert pid and (state / "rejected.jsonl").exists()
        p = banners("show", "--json", env=env)
        assert json.loads(p.stdout)[0]["campaign_id"] == 7
        assert emb.pid() == pid  # reused, not restarted
        # stopped, the read-only commands say so and do not start it again
        assert emb.stop()
        p = banners("show", "--json", env=env)
        assert p.returncode == 1 and f"no embedded Redis is running in the state folder {state}" in p.stderr
        assert emb.pid() is None
        # a restart keeps what was published (RDB written after the load)
        assert banners("redis", "start", env=env).returncode == 0
        p = banners("show", "--json", env=env)
        assert json.loads(p.stdout)[0]["campaign_id"] == 7
        # one of ours that froze is replaced (and killed: it is proven ours)
        frozen = emb.pid()
        os.kill(frozen, signal.SIGSTOP)
        assert banners("redis", "start", env=env).returncode == 0
        assert emb.pid() not in (None, frozen) and not _alive(frozen)
        # stale pid file and socket are cleaned up
        emb.stop()
        (state / "redis.pid").write_text("999999\n")
        (state / "redis.sock").write_text("")
        assert banners("redis", "start", env=env).returncode == 0
        p = banners("status", "--json", env=env)
        assert p.returncode == 0 and json.loads(p.stdout)["loaded"], p.stderr
    finally:
        banners("redis", "stop", env=env)
    assert EmbeddedRedis(state).pid() is None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_stale_pid_file_never_gets_another_process_killed(tmp_path, full):
    """redis.pid outlives its server; by the time a command reads it the pid may be
    anyone's.  A `sleep` of the same user was SIGKILLed by the next command."""
    state = tmp_path / "state"
    state.mkdir()
    env = embedded_env(state)
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        (state / "redis.pid").write_text(f"{sleeper.pid}\n")
        (state / "redis.url").write_text(f"unix://{state}/redis.sock\n")
        for cmd in (["status"], ["redis", "stop"], ["redis", "start"], ["load", str(full), "-q"], ["redis", "stop"]):
            (state / "redis.pid").write_text(f"{sleeper.pid}\n")  # stale again after a start
            banners(*cmd, env=env)
            assert sleeper.poll() is None, f"`banners {' '.join(cmd)}` killed pid {sleeper.pid}"
        assert EmbeddedRedis(state).pid() is None
    finally:
        sleeper.kill()
        sleeper.wait()
        banners("redis", "stop", env=env)


# A `banners load` that stops at a chosen point (before reading its files, or while
# writing its version) until told to go on, with the lease length it is given.
HELD_LOAD = """
import os, sys, time
import loader.pipeline as pipeline, loader.publish as publish
publish.LOAD_LEASE = float(os.environ["HELD_LEASE"])
gate = os.environ["HELD_GATE"]
mod, name = (pipeline, "compute") if os.environ["HELD_AT"] == "compute" else (publish, "_write_version")
real = getattr(mod, name)
def held(*args, **kw):
    open(gate + ".reached", "w").close()
    while not os.path.exists(gate + ".go"):
        time.sleep(0.02)
    return real(*args, **kw)
setattr(mod, name, held)
from banner_server import cli
cli.main(prog_name="banners")
"""


def held_load(url, data, gate, at, lease):
    env = {**os.environ, "HELD_LEASE": str(lease), "HELD_GATE": str(gate), "HELD_AT": at}
    proc = subprocess.Popen([sys.executable, "-c", HELD_LOAD, "load", str(data), "-q", "--redis-url", url,
                             "--reject-log", os.devnull], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not Path(f"{gate}.reached").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the held load never got there"
        time.sleep(0.02)
    return proc


def test_two_concurrent_loads_the_second_exits_1(redis_proc, real_redis, full, tmp_path):
    gate = tmp_path / "gate"
    first = held_load(redis_proc.url, full, gate, at="compute", lease=2.0)
    try:
        # The first load holds the lock before it reads a file (it waits at compute).
        second = banners("load", str(full), "--redis-url", redis_proc.url, "--reject-log", os.devnull)
        assert second.returncode == 1, second.stdout + second.stderr  # was 0: both published
        assert "another load is running" in second.stderr and second.stdout == ""
        # The lease is renewed while the first load lives: held past one and a half leases.
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            assert real_redis.exists(KEYS.load_lock)
            time.sleep(0.1)
        assert banners("load", str(full), "--redis-url", redis_proc.url, "--reject-log",
                       os.devnull).returncode == 1
        Path(f"{gate}.go").touch()
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, out + err
    finally:
        first.kill()
        first.wait()
    assert not real_redis.exists(KEYS.load_lock)  # released by its owner at the end


def test_a_load_killed_while_publishing_blocks_the_next_only_for_its_lease(runner, redis_proc, real_redis, full,
                                                                            tmp_path):
    assert run(runner, redis_proc, "load", str(full), "-q", "--reject-log", os.devnull).exit_code == 0
    before = real_redis.get(KEYS.current)
    killed = held_load(redis_proc.url, full, tmp_path / "gate", at="_write_version", lease=1.0)
    ttl = real_redis.pttl(KEYS.load_lock)
    killed.kill()
    killed.wait()
    assert 0 < ttl <= 1000  # was 10 minutes: every load exited 1 for that long
    deadline = time.monotonic() + 10
    while real_redis.exists(KEYS.load_lock) and time.monotonic() < deadline:
        time.sleep(0.05)
    res = run(runner, redis_proc, "load", str(full), "-q", "--reject-log", os.devnull)
    assert res.exit_code == 0, res.output
    assert real_redis.get(KEYS.current) != before
    # the killed load's leftovers are removed; the two published versions are kept
    assert real_redis.smembers(KEYS.versions) == {before, real_redis.get(KEYS.current)}


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
    from banner_server.clients.embedded import free_port

    res = runner.invoke(cli.main, ["serve", "--bind", f"127.0.0.1:{free_port()}", "--redis-url", redis_proc.url],
                        env={"BANNERS_REDIS_TIMEOUT": "fast"})
    assert res.exit_code == 2 and "BANNERS_REDIS_TIMEOUT='fast' is not a number" in res.output


# -- load --dry-run ---------------------------------------------------------------

def test_dry_run_prints_the_changes_and_publishes_nothing(runner, redis_proc, real_redis, full, tmp_path):
    state = tmp_path / "state"
    write(full, "1/more.csv", CLICKS + "3,101,7\n")  # one duplicate_row
    assert run(runner, redis_proc, "load", str(full), "--seed", "3", "--state-dir", str(state)).exit_code == 0
    serving_log = (state / "rejected.jsonl").read_text()
    current, before = real_redis.get(KEYS.current).decode(), real_redis.dbsize()
    res = run(runner, redis_proc, "load", str(full), "--dry-run", "--state-dir", str(state))
    assert res.exit_code == 0, res.output
    assert f"seed: 3 (version {current}'s; --seed tries another)" in res.stdout  # so only data changes show
    assert "quarter 1: no change" in res.stdout and f"no change against version {current}" in res.stdout
    write(full, "1/impressions_more.csv", IMPS + "102,7\n500,8\n")  # a banner for 7, a new campaign 8
    write(full, "1/clicks_more.csv", CLICKS + "4,102,7\n5,500,8\n")
    (full / "4" / "impressions_4.csv").unlink()  # quarter 4 gone: its campaign 7 is removed
    write(full, "4/impressions_4.csv", IMPS + "104,9\n")  # ...and campaign 9 added
    res = run(runner, redis_proc, "load", str(full), "--dry-run", "--state-dir", str(state))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert f"changes against version {current}:\n" in out
    assert ("quarter 1: 1 campaign(s) added, 0 removed, 1 with other banners\n"
            "  + campaign(s) 8\n"
            "  ~ campaign 7: +102\n"
            "quarter 2: no change\n"
            "quarter 3: no change\n"
            "quarter 4: 1 campaign(s) added, 1 removed, 0 with other banners\n"
            "  + campaign(s) 9\n"
            "  - campaign(s) 7\n") in out
    assert out.splitlines()[-1].startswith("dry run, nothing published (seed 3): ")
    assert out.splitlines()[-1].endswith(f"against version {current}: 2 campaign(s) added, 1 removed, "
                                         "1 with other banners (over all quarters)")
    assert f"1 rejection(s) logged to {state / 'rejected.dry-run.jsonl'}" in out
    # nothing published: same version, same keys, and the serving version's reject log untouched
    assert real_redis.get(KEYS.current).decode() == current and real_redis.dbsize() == before
    assert (state / "rejected.jsonl").read_text() == serving_log
    assert [json.loads(x)["reason"] for x in (state / "rejected.dry-run.jsonl").read_text().splitlines()] == [
        "duplicate_row"]
    res = run(runner, redis_proc, "load", str(full), "--dry-run", "-q", "--state-dir", str(state))
    assert res.exit_code == 0 and res.stderr == "" and res.stdout.count("\n") == 1
    assert "2 campaign(s) added, 1 removed" in res.stdout


def test_dry_run_exits_as_the_load_would(runner, redis_proc, real_redis, full, tmp_path):
    log = tmp_path / "dry.jsonl"
    res = run(runner, redis_proc, "load", str(full), "--dry-run", "--reject-log", str(log))
    assert res.exit_code == 0 and "changes (nothing is published yet):" in res.stdout
    assert "quarter 1: 1 campaign(s) added" in res.stdout and "no change against" not in res.stdout
    assert "against nothing published yet: 4 campaign(s) added" in res.stdout
    write(full, "2/bad.csv", CLICKS + "x,1,1\n")
    res = run(runner, redis_proc, "load", str(full), "--dry-run", "--reject-log", str(log))
    assert res.exit_code == 3 and f"1 invalid input(s) rejected, see {log}" in res.stderr
    res = run(runner, redis_proc, "load", str(full), "--dry-run", "--strict", "--reject-log", str(log))
    assert res.exit_code == 1
    assert f"--strict: 1 invalid input(s): a load would publish nothing (dry run); its 1 rejection(s) are in {log}" \
        in res.stderr
    assert [json.loads(x)["reason"] for x in log.read_text().splitlines()] == ["invalid"]
    (full / "3" / "impressions_3.csv").unlink()
    res = run(runner, redis_proc, "load", str(full), "--dry-run", "--reject-log", os.devnull)
    assert res.exit_code == 3 and "quarter 3 has no data" in res.stderr
    res = runner.invoke(cli.main, ["load", str(full), "--dry-run", "--redis-url", f"unix://{tmp_path}/nope.sock"])
    assert res.exit_code == 1 and "cannot reach Redis" in res.stderr and res.stdout == ""
    res = run(runner, redis_proc, "load", str(full), "--dry-run", "--reject-log", str(tmp_path / "no" / "r.jsonl"))
    assert res.exit_code == 2 and "does not exist" in res.stderr
    (tmp_path / "empty").mkdir()
    res = run(runner, redis_proc, "load", str(tmp_path / "empty"), "--dry-run")
    assert res.exit_code == 1 and "no *.csv files" in res.stderr
    assert real_redis.get(KEYS.current) is None  # nothing was ever published


def test_dry_run_does_not_wait_for_the_load_lock(runner, redis_proc, real_redis, full):
    assert run(runner, redis_proc, "load", str(full), "-q", "--reject-log", os.devnull).exit_code == 0
    real_redis.set(KEYS.load_lock, "a-running-load", px=10_000)
    res = run(runner, redis_proc, "load", str(full), "--dry-run", "-q", "--reject-log", os.devnull)
    assert res.exit_code == 0, res.output
    assert real_redis.get(KEYS.load_lock) == b"a-running-load"  # neither taken nor released
    assert run(runner, redis_proc, "load", str(full), "-q", "--reject-log", os.devnull).exit_code == 1


# -- versions and rollback --------------------------------------------------------

def _load_seeds(runner, redis_proc, data, *seeds):
    out = []
    for seed in seeds:
        res = run(runner, redis_proc, "load", str(data), "-q", "--seed", str(seed), "--reject-log", os.devnull)
        assert res.exit_code == 0, res.output
        out.append(res.stdout.split()[2])  # "published version V (seed ..."
    return out


def test_versions_lists_the_kept_ones_newest_first(runner, redis_proc, real_redis, full):
    assert run(runner, redis_proc, "versions").stdout.startswith("nothing published yet")
    assert json.loads(run(runner, redis_proc, "versions", "--json").stdout) == []
    vers = _load_seeds(runner, redis_proc, full, 1, 2, 3, 4, 5)
    listed = json.loads(run(runner, redis_proc, "versions", "--json").stdout)
    assert [v["version"] for v in listed] == vers[:0:-1]  # the first load's version is gone
    assert [(v["current"], v["seed"]) for v in listed] == [(True, 5), (False, 4), (False, 3), (False, 2)]
    first = listed[0]
    assert first["data_dir"] == str(full.resolve()) and first["quarters"] == [1, 2, 3, 4]
    assert first["banners"] == 5 and first["loaded_at"].endswith("+00:00")
    res = run(runner, redis_proc, "versions")
    lines = res.stdout.splitlines()
    assert res.exit_code == 0 and lines[0].split() == ["version", "loaded_at", "seed", "quarters", "banners",
                                                       "data_dir"]
    assert lines[1].split() == ["*", vers[4], first["loaded_at"], "5", "1,2,3,4", "5", str(full.resolve())]
    assert [line.split()[0] for line in lines[2:]] == vers[3:0:-1]


def test_rollback_command(runner, redis_proc, real_redis, full):
    res = run(runner, redis_proc, "rollback")
    assert res.exit_code == 1 and "nothing is published yet" in res.stderr
    v1, v2, v3 = _load_seeds(runner, redis_proc, full, 1, 2, 3)
    res = run(runner, redis_proc, "rollback")
    assert res.exit_code == 0 and res.stdout == (f"version {v2} is current again (was {v3}); workers serve it from "
                                                 "their next request\n")
    assert real_redis.get(KEYS.current).decode() == v2
    assert json.loads(run(runner, redis_proc, "status", "--json").stdout)["seed"] == 2
    assert run(runner, redis_proc, "rollback").exit_code == 0  # one more load back
    res = run(runner, redis_proc, "rollback")
    assert res.exit_code == 1
    assert (f"error: version {v1} is the oldest kept version: there is none before it to roll back to; kept "
            f"versions, newest first: {v3}, {v2}, {v1} (current)") in res.stderr
    res = run(runner, redis_proc, "rollback", "42-abcdef")
    assert res.exit_code == 1 and "no kept version '42-abcdef'; kept versions, newest first: " in res.stderr
    assert "Traceback" not in res.output
    res = run(runner, redis_proc, "rollback", v3.split("-")[0])  # forward again, by number
    assert res.exit_code == 0 and f"version {v3} is current again (was {v1})" in res.stdout
    res = run(runner, redis_proc, "rollback", v3)
    assert res.exit_code == 0 and res.stdout == f"version {v3} is already current: nothing changed\n"
    assert [v["current"] for v in json.loads(run(runner, redis_proc, "versions", "--json").stdout)] == [
        True, False, False]
    assert run(runner, redis_proc, "rollback", "a", "b").exit_code == 2
    assert not real_redis.exists(KEYS.load_lock)


def test_rollback_is_refused_while_a_load_runs(runner, redis_proc, real_redis, full, tmp_path):
    v1, v2 = _load_seeds(runner, redis_proc, full, 1, 2)
    gate = tmp_path / "gate"
    held = held_load(redis_proc.url, full, gate, at="_write_version", lease=5.0)
    try:
        res = run(runner, redis_proc, "rollback")
        assert res.exit_code == 1 and "a load or another rollback is running: nothing switched" in res.stderr
        assert real_redis.get(KEYS.current).decode() == v2
        Path(f"{gate}.go").touch()
        out, err = held.communicate(timeout=60)
        assert held.returncode == 0, out + err
    finally:
        held.kill()
        held.wait()
    v3 = real_redis.get(KEYS.current).decode()
    assert v3 not in (v1, v2)
    res = run(runner, redis_proc, "rollback")
    assert res.exit_code == 0 and f"version {v2} is current again (was {v3})" in res.stdout


def test_rollback_and_versions_never_start_the_embedded_redis(runner, tmp_path):
    typo = tmp_path / "typo"
    for cmd in (["versions"], ["versions", "--json"], ["rollback"], ["rollback", "3"]):
        res = runner.invoke(cli.main, [*cmd, "--state-dir", str(typo)], env={"BANNERS_REDIS_URL": None})
        assert res.exit_code == 1, (cmd, res.output)
        assert f"no embedded Redis is running in the state folder {typo}" in res.stderr
    assert not typo.exists()


def test_rollback_on_the_embedded_redis_is_saved(tmp_path, full):
    """The embedded Redis saves after a rollback as after a load: a crash keeps it."""
    import redis as redis_lib

    state = tmp_path / "state"
    env = embedded_env(state)
    try:
        v1 = banners("load", str(full), "-q", "--seed", "1", env=env).stdout.split()[2]
        assert banners("load", str(full), "-q", "--seed", "2", env=env).returncode == 0
        p = banners("rollback", env=env)
        assert p.returncode == 0 and f"version {v1} is current again" in p.stdout, p.stderr
        emb = EmbeddedRedis(state)
        client = redis_lib.Redis.from_url(emb.url())
        deadline = time.monotonic() + 10
        while client.info("persistence")["rdb_changes_since_last_save"] and time.monotonic() < deadline:
            time.sleep(0.05)  # the background save the rollback started
        client.close()
        os.kill(emb.pid(), signal.SIGKILL)  # no save on the way out
        assert banners("redis", "start", env=env).returncode == 0
        listed = json.loads(banners("versions", "--json", env=env).stdout)
        assert [(v["version"], v["current"]) for v in listed][1] == (v1, True)
    finally:
        banners("redis", "stop", env=env)
