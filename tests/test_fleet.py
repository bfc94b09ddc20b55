"""Issue 22, the server side: safe on its host and across a fleet.

One signing secret per deployment (serve records its fingerprint in Redis and a host
with another one refuses to start), metrics per server instance (a second server
never touches the first one's; exited workers folded), every pre-flight check before
`serving on`, postbacks of any shape answered in JSON, and embed.js' trust rules.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import fakeredis
import pytest
from click.testing import CliRunner

from banner_server.clients.embedded import free_port
from banner_server.web import metrics as metrics_mod
from banner_server.web.metrics import Counters, fold_worker, instance_dir, read_all
from banner_server.web.tokens import SecretError, fingerprint, load_secret
from tests.serving import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def banners_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANNERS_")}
    env.update(extra)
    return env


# --- the secret file (load_secret) -------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"\n", b"short-secret\n"])
def test_an_empty_or_short_secret_file_is_refused_with_a_message(tmp_path, content):
    (tmp_path / "secret").write_bytes(content)
    with pytest.raises(SecretError) as err:
        load_secret(None, tmp_path)
    assert "delete it" in str(err.value) and not err.value.environment
    assert content.strip() == b"" or content.strip().decode() not in str(err.value)  # never the secret


def test_a_state_folder_that_is_a_file_is_an_environment_error(tmp_path):
    (tmp_path / "state").write_text("not a folder")
    with pytest.raises(SecretError) as err:
        load_secret(None, tmp_path / "state")
    assert err.value.environment


@pytest.mark.parametrize("failing", ["link", "write"])
def test_load_secret_removes_its_temporary_file_on_every_failure(tmp_path, monkeypatch, failing):
    import banner_server.web.tokens as tokens

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "link":
        monkeypatch.setattr(tokens.os, "link", refuse)
    else:
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, fd, mode):
                self.fh = real_fdopen(fd, mode)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, data):
                refuse()

        monkeypatch.setattr(tokens.os, "fdopen", Full)
    with pytest.raises(SecretError) as err:
        load_secret(None, tmp_path)
    assert err.value.environment and "No space left" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_fingerprint_is_stable_and_says_nothing_of_the_secret():
    secret = b"a-deployment-secret-0123456789"
    assert fingerprint(secret) == fingerprint(secret) != fingerprint(secret + b"x")
    assert len(fingerprint(secret)) == 16 and secret.hex()[:8] not in fingerprint(secret)


# --- serve's pre-flight checks: before `serving on`, exit 2 (or 1), never a traceback ------

def run_serve(*args, env=None):
    from cli import main

    return CliRunner().invoke(main, ["serve", "--bind", f"127.0.0.1:{free_port()}", *args],
                              env={"BANNERS_SECRET": "", **(env or {})})


def assert_refused(result, code: int, *words: str):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "serving on" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for word in words:
        assert word in result.output, result.output


@pytest.mark.parametrize("content", [b"", b"tooshort\n"])
def test_serve_refuses_a_bad_secret_file_before_serving(tmp_path, content):
    (tmp_path / "secret").write_bytes(content)
    assert_refused(run_serve("--state-dir", str(tmp_path), "--redis-url", "redis://127.0.0.1:1/0"), 2,
                   "secret file", "BANNERS_SECRET")


def test_serve_refuses_a_state_folder_it_cannot_make(tmp_path):
    (tmp_path / "deploy").write_text("")  # a file where a folder of the path should be
    assert_refused(run_serve("--state-dir", str(tmp_path / "deploy" / "state"), "--redis-url",
                             "redis://127.0.0.1:1/0"), 2, "state folder", "a file")


def test_serve_refuses_a_metrics_folder_it_cannot_make(tmp_path):
    (tmp_path / "metrics").write_text("")  # where the metrics folder should be
    assert_refused(run_serve("--state-dir", str(tmp_path), "--redis-url", "redis://127.0.0.1:1/0"), 2,
                   "metrics folder")


@pytest.mark.skipif(IS_ROOT, reason="root writes in a read-only folder")
def test_serve_refuses_a_read_only_state_folder(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o500)
    try:
        assert_refused(run_serve("--state-dir", str(state), "--redis-url", "redis://127.0.0.1:1/0"), 1,
                       "cannot write in the state folder")
    finally:
        state.chmod(0o700)


@pytest.mark.skipif(IS_ROOT, reason="root reads a 0000 file")
def test_serve_refuses_an_unreadable_secret_file(tmp_path):
    (tmp_path / "secret").write_text("x" * 40)
    (tmp_path / "secret").chmod(0)
    assert_refused(run_serve("--state-dir", str(tmp_path), "--redis-url", "redis://127.0.0.1:1/0"), 1,
                   "cannot read the secret file")


# --- one signing secret per deployment ---------------------------------------------------

def test_the_first_server_records_the_fingerprint_and_a_different_one_is_refused(capsys):
    from banner_server.cli import serve as serve_mod

    client = fakeredis.FakeRedis()
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    serve_mod._check_fleet_secret(client, b"s" * 32, rotate=None, now=at)
    recorded = client.hgetall(serve_mod.signing_key())
    assert recorded[b"fingerprint"].decode() == fingerprint(b"s" * 32)
    assert recorded[b"since"] == b"2026-01-02T03:04:05+00:00" and recorded[b"host"]
    serve_mod._check_fleet_secret(client, b"s" * 32, rotate=None)  # the same secret: fine
    with pytest.raises(SystemExit) as exc:
        serve_mod._check_fleet_secret(client, b"t" * 32, rotate=None)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert fingerprint(b"t" * 32) in err and f"--rotate-secret {fingerprint(b's' * 32)}" in err
    assert "tttt" not in err and "ssss" not in err
    # Rotating names the fingerprint it replaces: another one replaces nothing.
    with pytest.raises(SystemExit):
        serve_mod._check_fleet_secret(client, b"t" * 32, rotate="0" * 16)
    serve_mod._check_fleet_secret(client, b"t" * 32, rotate=fingerprint(b"s" * 32))
    assert client.hget(serve_mod.signing_key(), "fingerprint").decode() == fingerprint(b"t" * 32)
    # The option left set cannot take the deployment back: the old secret is refused.
    with pytest.raises(SystemExit):
        serve_mod._check_fleet_secret(client, b"s" * 32, rotate=fingerprint(b"s" * 32))
    serve_mod._check_fleet_secret(client, b"t" * 32, rotate=fingerprint(b"s" * 32))  # harmless once done


@pytest.fixture
def data(sample_dir, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(sample_dir(12, 0.01), target)
    return target


@pytest.fixture
def states():
    made = []

    def make(name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"bsf{name}-", dir="/tmp"))  # short: the embedded socket's limit
        made.append(path)
        return path

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def serve_argv(state: Path, port: int, *extra) -> list:
    return [str(VENV_BIN / "banners"), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--state-dir", str(state), *extra]


@pytest.mark.slow
def test_two_hosts_with_different_secrets_the_second_refuses_same_secret_clicks_cross(redis_proc, data, states):
    from tests.test_deploy import get, start_server, status_of, wait_for

    client = redis_proc.client()
    client.flushall()
    env = banners_env(BANNERS_REDIS_URL=redis_proc.url, BANNERS_SECRET="secret-of-host-a-0123456789")
    load = subprocess.run([str(VENV_BIN / "banners"), "load", str(data), "--seed", "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert load.returncode == 0, load.stdout + load.stderr
    port_a, port_b = free_port(), free_port()
    a = start_server(serve_argv(states("a"), port_a), env, port_a)
    servers = [a]
    try:
        other = {**env, "BANNERS_SECRET": "another-secret-on-host-b-987654"}
        refused = subprocess.run(serve_argv(states("b"), port_b), env=other, capture_output=True, text=True,
                                 timeout=60)
        assert refused.returncode == 2, refused.stderr
        assert "another secret" in refused.stderr and "--rotate-secret" in refused.stderr
        assert "serving on" not in refused.stderr and "Traceback" not in refused.stderr
        assert "another-secret-on-host-b" not in refused.stderr and "secret-of-host-a" not in refused.stderr
        b = start_server(serve_argv(states("b"), port_b), env, port_b)
        servers.append(b)
        wait_for(lambda: get(port_a, "/readyz")[0] == 200 and get(port_b, "/readyz")[0] == 200, 20, "/readyz")
        status, _, body = get(port_a, "/campaigns/1", {"Accept": "application/json"})
        assert status == 200
        click = json.loads(body)["click_url"]
        assert status_of(port_b, click) == 302
    finally:
        for server in servers:
            server.stop()


# --- metrics per server instance -----------------------------------------------------------

def test_instance_dir_keeps_running_servers_and_removes_dead_ones(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f"{sleeper.pid}-{metrics_mod._start_ticks(sleeper.pid)}"
        live.mkdir()
        (live / "1-a.keys").write_text("x\n")
        dead = tmp_path / f"{sleeper.pid}-1"  # the same pid, another start: a server that is gone
        dead.mkdir()
        gone = tmp_path / "4194305-7"  # above any pid_max
        gone.mkdir()
        mine = instance_dir(tmp_path)
        assert mine.is_dir() and not list(mine.iterdir())
        assert mine.name.startswith(f"{os.getpid()}-")
        assert live.is_dir() and (live / "1-a.keys").exists()
        assert not dead.exists() and not gone.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def worker_files(directory: Path, pid: int, counts: dict) -> None:
    """The files a worker with this pid leaves: its names and its values."""
    counters = Counters(directory, capacity=64)
    for name, value in counts.items():
        counters.inc(name, value)
    counters.mm.flush()
    stem = next(p.stem for p in directory.glob(f"{os.getpid()}-*.keys") if not p.stem.startswith(f"{pid}-"))
    for suffix in (".bin", ".keys"):
        os.rename(directory / f"{stem}{suffix}", directory / f"{pid}-x{suffix}")


def test_thirty_exited_workers_fold_into_one_file_and_the_sums_hold(tmp_path):
    for pid in range(1000, 1030):
        worker_files(tmp_path, pid, {"req\x1f/\x1f200": 2.0, f"served\x1f1\x1f{pid % 3}\x1f7": 1.0})
        assert fold_worker(tmp_path, pid) == 1
    worker_files(tmp_path, 2000, {"req\x1f/\x1f200": 5.0})  # a live worker
    totals = read_all(tmp_path)
    assert totals["req\x1f/\x1f200"] == 65.0
    assert sum(v for k, v in totals.items() if k.startswith("served")) == 30.0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["2000-x.bin", "2000-x.keys", "folded.json"]
    assert fold_worker(tmp_path, 1000) == 0  # already folded


def test_a_read_during_a_fold_counts_the_worker_once(tmp_path):
    worker_files(tmp_path, 3000, {"req\x1f/\x1f200": 3.0})
    # The fold wrote folded.json but did not remove the worker's files yet.
    real_unlink = Path.unlink
    Path.unlink = lambda self, missing_ok=False: None
    try:
        fold_worker(tmp_path, 3000)
    finally:
        Path.unlink = real_unlink
    assert (tmp_path / "3000-x.keys").exists()
    assert read_all(tmp_path)["req\x1f/\x1f200"] == 3.0
    fold_worker(tmp_path, 3000)
    assert read_all(tmp_path)["req\x1f/\x1f200"] == 3.0


def metric(port: int, route: str) -> int:
    from tests.test_deploy import get

    from tests.serving import ADMIN

    text = get(port, "/metrics", ADMIN)[2].decode()  # an operator page
    for line in text.splitlines():
        if line.startswith(f'banners_http_requests_total{{route="{route}",status="200"}}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


@pytest.mark.slow
def test_a_second_server_on_the_same_state_folder_leaves_the_first_ones_metrics(redis_proc, states):
    from tests.test_deploy import get, start_server

    env = banners_env(BANNERS_REDIS_URL=redis_proc.url, BANNERS_SECRET="one-secret-for-both-0123456789",
                      BANNERS_ADMIN_TOKEN=ADMIN_TOKEN)
    redis_proc.client().delete("banners:{banners}:signing")
    state = states("m")
    port_a, port_b = free_port(), free_port()
    a = start_server(serve_argv(state, port_a), env, port_a)
    try:
        base = metric(port_a, "/healthz")  # start_server asked it too
        for _ in range(5):
            assert get(port_a, "/healthz")[0] == 200
        assert metric(port_a, "/healthz") == base + 5
        b = start_server(serve_argv(state, port_b), env, port_b)  # before: wiped a's folder
        try:
            seen_by_b = metric(port_b, "/healthz")
            for _ in range(3):
                assert get(port_a, "/healthz")[0] == 200
            assert metric(port_a, "/healthz") == base + 8  # a still counts, from where it was
            assert metric(port_b, "/healthz") == seen_by_b  # b never reads a's counts
            folders = sorted(p.name.split("-")[0] for p in (state / "metrics").iterdir())
            assert folders == sorted([str(a.proc.pid), str(b.proc.pid)])
        finally:
            b.stop()
    finally:
        a.stop()


@pytest.mark.slow
def test_thirty_reloads_keep_the_metrics_files_bounded_and_the_counts(redis_proc, states):
    from tests.test_deploy import get, start_server, wait_for, workers

    env = banners_env(BANNERS_REDIS_URL=redis_proc.url, BANNERS_SECRET="one-secret-for-both-0123456789",
                      BANNERS_ADMIN_TOKEN=ADMIN_TOKEN)
    redis_proc.client().delete("banners:{banners}:signing")
    state = states("r")
    port = free_port()
    server = start_server(serve_argv(state, port), env, port)
    try:
        (folder,) = (state / "metrics").iterdir()
        base = metric(port, "/healthz")
        for i in range(30):
            before = workers(server)
            assert get(port, "/healthz")[0] == 200
            os.kill(server.proc.pid, signal.SIGHUP)
            wait_for(lambda: workers(server) and not workers(server) & before, 30, f"reload {i}")
        wait_for(lambda: get(port, "/readyz")[0] in (200, 503), 10, "/readyz")
        assert get(port, "/healthz")[0] == 200
        # Two files per live worker, one folded file (before: two per worker that ever ran).
        wait_for(lambda: len(list(folder.iterdir())) <= 3, 10, "the last worker's files folded")
        assert metric(port, "/healthz") == base + 31  # every reload's request and the last one, once
    finally:
        server.stop()


# --- postbacks: any malformed JSON is a 400 in JSON; advertisers' tokens ----------------------

POSTBACK = "global-postback-token-0123456789"
SHOP_TOKEN = "shop-seven-token-0123456789"


@pytest.fixture
def postbacks():
    """(a client of /conversions whose app has the global token and campaign 7's, the
    click id of a click on campaign 7, the click id of one on campaign 8, the ticks)."""
    import falcon
    import falcon.testing

    from banner_server.layout.events import EventStore
    from banner_server.layout.keys import Keys
    from banner_server.web.html import error_serializer, internal_error
    from banner_server.web.postbacks import ConversionResource

    r = fakeredis.FakeRedis()
    events = EventStore(r, Keys())
    when = dt.datetime(2026, 11, 28, 23, 20, tzinfo=dt.timezone.utc)
    seven, eight = events.record_click(7, 100, 0, when), events.record_click(8, 200, 0, when)
    ticks = [1000.0]
    app = falcon.App()
    app.set_error_serializer(error_serializer)
    app.add_error_handler(Exception, internal_error)  # as the real app: a 500 would be an HTML page
    resource = ConversionResource(events, POSTBACK, lambda: when, campaign_tokens=((7, SHOP_TOKEN),),
                                  tick=lambda: ticks[0])
    app.add_route("/conversions", resource)
    return falcon.testing.TestClient(app), seven, eight, ticks


def post_raw(client, body: str, token=POSTBACK, content_type="application/json"):
    return client.simulate_post("/conversions", body=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type})


@pytest.mark.parametrize("body, says", [
    ("[" * 2000 + "]" * 2000, "nested too deeply"),
    ('{"click_id": ' + "[" * 2000 + "]" * 2000 + "}", "nested too deeply"),
    ('{"a":' + "[" * 1990 + "]" * 1990 + "}", "nested too deeply"),
    ('{"click_id": 1' + "0" * 3900 + ', "conversion_id": 1, "revenue": 1}', "must be an integer"),
    ('{"click_id": 1, "conversion_id": 2, "revenue": 1' + "0" * 3900 + "}", "below"),
    ('{"click_id": 1, "conversion_id": 2, "revenue": NaN}', "finite"),
    ('{"click_id": 1, "conversion_id": 2, "revenue": 1e999999999}', "revenue"),
    ('{"click_id": 1, "conversion_id": 2, "revenue": -Infinity}', "finite"),
    ('[1, 2, 3]', "must be an object"),
    ('"text"', "must be an object"),
    ("null", "must be an object"),
    ('{"click_id": 1, "conversion_id": 2, "revenue": 1, "click_id": 2}', "more than once"),
    ('{"click_id": 1, "conversion_id": 2, "revenue": 1, "x": {"a": 1, "a": 2}}', "more than once"),
])
def test_malformed_json_of_any_shape_is_a_400_in_json(postbacks, body, says):
    client, *_ = postbacks
    res = post_raw(client, body)
    assert res.status_code == 400, res.text[:300]
    assert res.headers["Content-Type"].startswith("application/json")
    assert says in res.json["detail"], res.json


def test_an_advertisers_token_posts_its_campaigns_conversions_only(postbacks):
    client, seven, eight, _ = postbacks
    body = json.dumps({"click_id": seven, "conversion_id": 1, "revenue": "5"})
    assert post_raw(client, body, SHOP_TOKEN).status_code == 201
    res = post_raw(client, json.dumps({"click_id": eight, "conversion_id": 2, "revenue": "5"}), SHOP_TOKEN)
    assert res.status_code == 403 and "campaign 7 only" in res.json["detail"]
    assert post_raw(client, json.dumps({"click_id": 99, "conversion_id": 3, "revenue": "5"}), SHOP_TOKEN
                    ).status_code == 404
    # The global token still posts any campaign's.
    assert post_raw(client, json.dumps({"click_id": eight, "conversion_id": 2, "revenue": "5"})).status_code == 201


def test_campaign_tokens_alone_configure_postbacks_and_are_a_secret_setting():
    from banner_server import config
    from banner_server.layout.events import EventStore
    from banner_server.layout.keys import Keys
    from banner_server.web.postbacks import ConversionResource

    settings = config.Settings.from_env({"BANNERS_POSTBACK_TOKENS": f"7:{SHOP_TOKEN}, 9:{POSTBACK}"})
    assert settings.postback_tokens == ((7, SHOP_TOKEN), (9, POSTBACK))
    assert config.Settings.from_env({}).postback_tokens == ()
    with pytest.raises(config.SettingError) as err:
        config.POSTBACK_TOKENS.get({"BANNERS_POSTBACK_TOKENS": "seven:" + SHOP_TOKEN})
    assert SHOP_TOKEN not in str(err.value)
    resource = ConversionResource(EventStore(fakeredis.FakeRedis(), Keys()), None, dt.datetime.now,
                                  campaign_tokens=settings.postback_tokens)
    assert resource._campaign_tokens  # not the 503 of "no token"


def test_wrong_tokens_are_logged_once_a_minute_per_client_with_a_count(postbacks, caplog):
    client, seven, _, ticks = postbacks
    caplog.set_level("WARNING", logger="banner_server")
    for _ in range(50):
        assert post_raw(client, "{}", token="wrong-token-0123456789").status_code == 401
    said = [r.getMessage() for r in caplog.records if "wrong token" in r.getMessage()]
    assert len(said) == 1
    ticks[0] += 61
    post_raw(client, "{}", token="wrong-token-0123456789")
    said = [r.getMessage() for r in caplog.records if "wrong token" in r.getMessage()]
    assert len(said) == 2 and "49 more" in said[1]


# --- embed.js: its own tags, digits, http(s) links, whole answers (headless Chromium) --------

def _http_server(routes: dict, seen: list, allow_origin: str | None = None):
    """A loopback HTTP server answering `routes` (path with query -> (type, body)),
    recording each path asked; the caller shuts it down."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            kind, body = routes.get(self.path, ("text/plain", None))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", kind)
            if allow_origin:
                self.send_header("Access-Control-Allow-Origin", allow_origin)
                self.send_header("Access-Control-Allow-Credentials", "true")
            data = (body or "not found").encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.slow
def test_embed_js_places_only_its_own_tags_with_whole_http_answers(tmp_path):
    import re

    from tests.test_browser import _chromium

    chrome = _chromium()
    script = (ROOT / "banner_server" / "web" / "embed.js").read_text()
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="250"/>'

    def answer(banner, **fields):
        return "application/json", json.dumps({"banner_id": banner, "name": f"B{banner}",
                                               "click_url": f"/click/t{banner}",
                                               "image_url": f"/banners/{banner}.svg", **fields})

    site_seen, ours_seen, other_seen, site_routes = [], [], [], {}
    site, site_url = _http_server(site_routes, site_seen)
    ours, ours_url = _http_server({
        "/embed.js": ("application/javascript", script),
        "/campaigns/7?format=json": answer(700),
        "/campaigns/8?format=json": answer(800, click_url="javascript:alert(1)"),
        "/campaigns/10?format=json": answer(1000, image_url=None),
        "/campaigns/11?format=json": answer(1100, click_url="data:text/html,hello"),
        "/?format=json": ("application/json", json.dumps({"campaigns": []})),
        **{f"/banners/{b}.svg": ("image/svg+xml", svg) for b in (700, 800, 1000, 1100)},
    }, ours_seen, allow_origin=site_url)
    other, other_url = _http_server({
        "/embed.js": ("application/javascript", "/* another vendor's script */"),
        "/campaigns/5?format=json": answer(500, click_url="javascript:alert(2)"),
    }, other_seen, allow_origin=site_url)
    page = ("<!doctype html><html><body><h1>A publisher's page</h1>"
            f'<div id="good"><script src="{ours_url}/embed.js" data-campaign="7" async></script></div>'
            f'<div id="js"><script src="{ours_url}/embed.js" data-campaign="8" async></script></div>'
            f'<div id="dots"><script src="{ours_url}/embed.js" data-campaign=".." async></script></div>'
            f'<div id="half"><script src="{ours_url}/embed.js" data-campaign="10" async></script></div>'
            f'<div id="data"><script src="{ours_url}/embed.js" data-campaign="11" async></script></div>'
            f'<div id="vendor"><script src="{other_url}/embed.js" data-campaign="5" async></script></div>'
            "</body></html>")
    try:
        site_routes["/index.html"] = ("text/html", page)
        dom = chrome.dump_dom(f"{site_url}/index.html", 1000, 900, extra=["--virtual-time-budget=5000"])
    finally:
        for server in (site, ours, other):
            server.shutdown()

    def div(name):
        return re.search(f'<div id="{name}">(.*?)</div>', dom, re.S).group(1)

    assert f'<a href="{ours_url}/click/t700"><img src="{ours_url}/banners/700.svg"' in div("good"), dom
    for name in ("js", "dots", "half", "data"):
        assert div(name) == "", (name, dom)  # removed: nothing half shown, no link that is not http(s)
    assert "javascript:" not in dom and "undefined" not in dom
    assert "<script" in div("vendor") and f"{other_url}/embed.js" in div("vendor")  # another vendor's tag: left
    assert not [p for p in other_seen if p.startswith("/campaigns")]  # and its answers never asked
    assert not [p for p in ours_seen if p.startswith("/?") or ".." in p]  # '..' never fetched the index
