"""How `banners serve` is configured and started: settings, addresses, Redis URLs,
signals, process names, and serving from an installed wheel."""

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from banner_server import cli
from banner_server import checks, config
from banner_server.clients import urls
from banner_server.clients.embedded import free_port
from tests.harness import RedisProcess

ROOT = Path(__file__).resolve().parent.parent


class Started(Exception):
    """Raised instead of exec'ing gunicorn: serve got past every check."""


@pytest.fixture
def no_exec(monkeypatch):
    """serve exec's gunicorn in place; in CliRunner that would replace pytest."""
    calls = []

    def execv(path, argv):
        calls.append((path, argv, dict(os.environ)))
        raise Started

    monkeypatch.setattr(os, "execv", execv)
    # serve hands its settings to gunicorn through os.environ: keep the test's own clean
    monkeypatch.setattr(os, "environ", os.environ.copy())
    return calls


@pytest.fixture
def serve(redis_proc, no_exec):
    """serve(*args, env=) -> the CliRunner result, against a real Redis, never exec'ing."""

    def invoke(*args, env=None):
        return CliRunner().invoke(cli.main, ["serve", *args, "--redis-url", redis_proc.url], env=env)

    return invoke


# -- Redis URLs: one parser for every client, a usage error for every command -------

BAD_URLS = [
    "redis://127.0.0.1:6379/abc",  # redis-py ignored the database, the hot path's client crashed on it
    "redis://:s3cret@[::1/0",  # urlsplit raised while the message was being written
    "redis://127.0.0.1:70000/0",
    "redis://127.0.0.1:0/0",  # redis-py silently used 6379
    "unix://",
    "bogus://x",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_redis_url_a_client_cannot_use_is_a_usage_error_for_every_command(url, tmp_path, no_exec):
    runner = CliRunner()
    for cmd in (["status"], ["show"], ["load", str(tmp_path)], ["serve", "--bind", f"127.0.0.1:{free_port()}"]):
        res = runner.invoke(cli.main, [*cmd, "--redis-url", url])
        assert res.exit_code == 2, (cmd, res.output, res.exception)
        assert "--redis-url" in res.output and "Traceback" not in res.output and "s3cret" not in res.output, cmd
    res = runner.invoke(cli.main, ["status"], env={"BANNERS_REDIS_URL": url})
    assert res.exit_code == 2 and "BANNERS_REDIS_URL" in res.output and "s3cret" not in res.output
    assert not no_exec  # nothing started


@pytest.mark.parametrize("url", [
    "redis://", "redis://h", "redis://h:7/3", "redis://h/%33", "redis://h/3?db=4", "redis://u:p%40ss@h:7/1",
    "redis://:pw@[::1]:7/2", "rediss://h:7/0?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem", "unix:///tmp/r.sock?db=5",
    "unix://:pw@/tmp/r.sock",
])
def test_fastredis_reads_a_url_exactly_as_redis_py(url):
    import redis

    from banner_server.clients.fast import FastRedis

    kw = redis.Redis.from_url(url).connection_pool.connection_kwargs
    fast = FastRedis(url)
    assert fast.path == kw.get("path")
    if fast.path is None:
        assert (fast.host, fast.port) == (kw.get("host", "localhost"), kw.get("port", 6379))
    assert (fast.username, fast.password, fast.db) == (kw.get("username"), kw.get("password"), kw.get("db", 0))
    assert fast.scheme == url.split("://")[0]


def test_fastredis_refuses_what_the_cli_refuses():
    from banner_server.clients.fast import FastRedis

    for url in BAD_URLS:
        with pytest.raises(ValueError):
            FastRedis(url)
        with pytest.raises(ValueError):
            urls.parse_redis_url(url)


def test_messages_never_show_a_password():
    assert urls.mask_password("redis://:p@ss@h/0") == "redis://:***@h/0"  # up to the last @
    assert urls.mask_password("redis://u:s3cret@[::1/0") == "redis://u:***@[::1/0"  # too broken to parse
    assert urls.mask_password("redis://h:6379/0?x=a@b") == "redis://h:6379/0?x=a@b"


# -- --bind: gunicorn's own address syntax ---------------------------------------------

def test_bind_follows_gunicorns_address_parser():
    from banner_server.bind import parse_bind

    assert parse_bind("tcp://127.0.0.1:18123") == ("127.0.0.1", 18123)
    assert parse_bind("[::1]") == ("::1", 8000)
    assert parse_bind("LOCALHOST:9") == ("localhost", 9)
    assert parse_bind("unix://run/x.sock") is None
    for bad in ("::1", "fd://x", "localhost:", "127.0.0.1:0"):
        with pytest.raises(ValueError):
            parse_bind(bad)


def test_serve_takes_every_bind_gunicorn_takes_and_refuses_the_rest(serve, no_exec):
    port = free_port()
    res = serve("--bind", f"tcp://127.0.0.1:{port}")
    assert isinstance(res.exception, Started), res.output
    assert no_exec[0][2]["BANNERS_BIND"] == f"tcp://127.0.0.1:{port}"
    res = serve("--bind", "::1")
    assert res.exit_code == 2 and "[::1]:8000" in res.output and "Traceback" not in res.output
    # a bind without a port: the message says which port it tried
    res = serve("--bind", "no-such-host.invalid")
    assert res.exit_code == 1 and "no-such-host.invalid:8000" in res.output
    assert len(no_exec) == 1


# -- settings: one module owns every variable ------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("BANNERS_KEEPALIVE", "soon"), ("BANNERS_KEEPALIVE", "-1"), ("BANNERS_WORKER_TIMEOUT", "0"),
    ("BANNERS_WORKER_TIMEOUT", "1.5"), ("BANNERS_LOG_LEVEL", "loud"), ("BANNERS_REDIS_RETRY", "never"),
    ("BANNERS_REDIS_MAXMEMORY", "lots"), ("BANNERS_TZ", "+01:00"),
])
def test_a_bad_variable_stops_serve_before_it_starts_and_is_named(serve, no_exec, name, value):
    res = serve("--bind", f"127.0.0.1:{free_port()}", env={name: value})
    assert res.exit_code == 2, (res.output, res.exception)
    assert name in res.output and "Traceback" not in res.output
    assert not no_exec


def test_every_serve_option_has_its_variable_and_the_variable_reaches_the_workers(serve, no_exec, tmp_path):
    for param in cli.main.commands["serve"].params:
        if param.name == "help":
            continue
        assert param.envvar in config.VARIABLES, param.name
        assert config.VARIABLES[param.envvar].option == param.opts[0], param.name
    port = free_port()
    env = {"BANNERS_BIND": f"127.0.0.1:{port}", "BANNERS_WORKERS": "3", "BANNERS_QUARTER": "2",
           "BANNERS_TZ": "Asia/Kathmandu", "BANNERS_IMAGES": str(tmp_path), "BANNERS_VISITOR_TTL": "60",
           "BANNERS_COOKIE_SECURE": "1", "BANNERS_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
           "BANNERS_ACCESS_LOG": "-"}
    res = serve(env=env)
    assert isinstance(res.exception, Started), res.output
    seen = no_exec[0][2]
    assert {k: seen[k] for k in env} == {**env, "BANNERS_TRUSTED_PROXIES": "10.0.0.0/8,192.168.1.1/32"}
    settings = config.Settings.from_env(seen)
    assert (settings.quarter, settings.tz, settings.visitor_ttl, settings.cookie_secure) == (2, "Asia/Kathmandu", 60, True)
    assert settings.images_dir == tmp_path and len(settings.trusted_proxies) == 2
    res = serve(env={"BANNERS_COOKIE_SECURE": "perhaps"})
    assert res.exit_code == 2 and "BANNERS_COOKIE_SECURE" in res.output


def test_the_gunicorn_settings_come_from_the_variables():
    env = {**os.environ, "BANNERS_BIND": "127.0.0.1:9", "BANNERS_WORKERS": "3", "BANNERS_KEEPALIVE": "7",
           "BANNERS_WORKER_TIMEOUT": "11", "BANNERS_LOG_LEVEL": "warning"}
    code = ("import runpy, sys; c = runpy.run_path(sys.argv[1]); "
            "print(c['bind'], c['workers'], c['keepalive'], c['timeout'], c['loglevel'], c['proc_name'])")
    for conf in (ROOT / "gunicorn.conf.py", ROOT / "banner_server" / "hosting" / "gunicorn_conf.py"):
        out = subprocess.run([sys.executable, "-c", code, str(conf)], env=env, cwd=ROOT, capture_output=True, text=True)
        assert out.stdout.split() == ["127.0.0.1:9", "3", "7", "11", "warning", "banners"], out.stderr


def test_only_the_config_module_reads_the_environment():
    """BANNERS_* names and defaults were read in four places; now config.py owns them."""
    product = [ROOT / "cli.py", ROOT / "gunicorn.conf.py", *sorted((ROOT / "banner_server").rglob("*.py")),
               *sorted((ROOT / "loader").glob("*.py"))]
    for path in product:
        if path.name == "config.py":
            continue
        text = path.read_text()
        reads = re.findall(r"os\.environ\.get|os\.environ\[|os\.getenv|getenv\(", text)
        assert not reads, f"{path.name} reads the environment itself"
        for name in re.findall(r"BANNERS_[A-Z_]+", text):
            assert name in config.VARIABLES, f"{path.name} names {name}, which config.py does not define"


def test_the_readme_lists_exactly_the_variables_config_defines():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(BANNERS_[A-Z_]+)` \|([^|]*)\|([^|]*)\|", readme, re.M)
    names = [r[0] for r in rows]
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert set(names) == set(config.VARIABLES)
    for name, option, default in rows:
        var = config.VARIABLES[name]
        assert (var.option or "") in option, name
        assert var.default is None or f"`{var.default}`" in default, name


def test_a_bad_embedded_redis_cap_is_a_usage_error_where_it_is_used(tmp_path):
    runner, env = CliRunner(), {"BANNERS_REDIS_MAXMEMORY": "lots", "BANNERS_REDIS_URL": ""}
    for cmd in (["redis", "start"], ["load", str(tmp_path)]):  # the commands that start it
        res = runner.invoke(cli.main, [*cmd, "--state-dir", str(tmp_path)], env=env)
        assert res.exit_code == 2 and "BANNERS_REDIS_MAXMEMORY='lots'" in res.output, (cmd, res.output)
    res = runner.invoke(cli.main, ["redis", "stop", "--state-dir", str(tmp_path)], env=env)  # does not need it
    assert res.exit_code == 0 and "not running" in res.output


# -- --tz -------------------------------------------------------------------------------

def test_a_utc_offset_is_not_a_zone_but_the_message_names_the_zones_at_that_offset():
    when = dt.datetime(2026, 1, 15, 12, tzinfo=dt.timezone.utc)
    with pytest.raises(ValueError, match="Asia/Kathmandu"):
        checks.check_zone("+05:45", now=when)
    with pytest.raises(ValueError, match="Asia/Kathmandu"):
        checks.check_zone("+5:45", now=when)
    with pytest.raises(ValueError, match="Europe/Amsterdam"):
        checks.check_zone("Europe/Amsterdm", now=when)
    assert checks.check_zone("Asia/Kathmandu", now=when) == "Asia/Kathmandu"


def test_serve_tz_errors_suggest_zone_names(serve):
    res = serve("--tz", "+05:45")
    assert res.exit_code == 2 and "Asia/Kathmandu" in res.output and "--tz" in res.output


# -- help --------------------------------------------------------------------------------

def test_help_covers_what_the_commands_do():
    runner = CliRunner()
    for cmd in (["redis", "start"], ["redis", "stop"]):
        out = runner.invoke(cli.main, [*cmd, "--help"]).output
        assert re.search(r"--state-dir \S+\s+\S", out), out  # the option has a help text
    out = runner.invoke(cli.main, ["serve", "--help"]).output
    assert ".png" in out and "/campaign/" in out
    assert "BANNERS_BIND" in out and "BANNERS_WORKERS" in out
    # sample-data does not use Redis: it does not take its options either
    res = runner.invoke(cli.main, ["sample-data", "out", "--redis-url", "redis://x"])
    assert res.exit_code == 2 and "No such option" in res.output


# -- a real server: start-up log, process names, signals ---------------------------------

class Serving:
    """`banners serve` with 2 workers in its own process group."""

    def __init__(self, redis_url, state, cmd=None, cwd=ROOT, env=None):
        import http.client

        self.port = free_port()
        self.proc = subprocess.Popen(
            [*(cmd or [sys.executable, "-m", "cli"]), "serve", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
             "--redis-url", redis_url, "--state-dir", str(state)],
            cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200 and len(self.workers()) == 2:
                    return
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("server did not start: " + self.proc.stdout.read().decode()[-3000:])

    def workers(self):
        return psutil.Process(self.proc.pid).children()

    def stop(self, sig, group=False, timeout=15.0):
        """Sends sig (to the master, or to the whole group like Ctrl-C); (seconds, output)."""
        start = time.monotonic()
        (os.killpg if group else os.kill)(self.proc.pid, sig)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return time.monotonic() - start, out.decode()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()


@pytest.fixture(scope="module")
def redis_serve():
    from tests.serving import STANDARD, publish_rows

    proc = RedisProcess().start()
    publish_rows(proc.client(), STANDARD)  # something to serve: a server with nothing warns, rightly
    yield proc
    proc.close()


@pytest.mark.slow
@pytest.mark.parametrize("sig, group", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["kill -INT", "kill -TERM", "Ctrl-C"])
def test_serve_stops_quickly_and_quietly(redis_serve, tmp_path, sig, group):
    server = Serving(redis_serve.url, tmp_path)
    try:
        took, out = server.stop(sig, group)
    finally:
        server.kill()
    assert server.proc.returncode == 0, out
    for noise in ("SIGKILL", "SIGQUIT", "was sent", "Traceback", "[ERROR]", "[WARNING]"):
        assert noise not in out, out
    assert out.count("Worker exiting") == 2, out
    # gunicorn's fallback is SIGKILL after graceful_timeout (10 s); meinheld stops in ~1 s
    assert took < 5, (took, out)


@pytest.mark.slow
def test_the_start_up_log_and_the_process_names(redis_serve, tmp_path):
    server = Serving(redis_serve.url, tmp_path)
    try:
        titles = [" ".join(p.cmdline()).strip() for p in [psutil.Process(server.proc.pid), *server.workers()]]
    finally:
        took, out = server.stop(signal.SIGTERM)
    assert titles == ["banners: master", "banners: worker", "banners: worker"]
    assert f"Listening at: http://127.0.0.1:{server.port} ({server.proc.pid})" in out, out


# -- an installed wheel serves ---------------------------------------------------------------

@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_serves(redis_serve, tmp_path):
    import shutil
    import site
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "var", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "tests", "bench"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(src)], check=True, capture_output=True)
    (wheel,) = wheels.glob("*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist() if ".dist-info" not in name}
    assert tops == {"banner_server", "loader"}  # no generic top-level `cli` or `gunicorn`

    # A fresh venv whose only extra path is this venv's site-packages (for the pinned
    # dependencies: fast, and no network); the project itself comes from the wheel only.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (pure,) = (venv / "lib").glob("python3*/site-packages")
    (pure / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", str(wheel)], check=True, capture_output=True)
    where = tmp_path / "elsewhere"
    where.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "import banner_server; print(banner_server.__file__)"],
                           cwd=where, env=env, capture_output=True, text=True, check=True).stdout
    assert found.startswith(str(pure)), found

    server = Serving(redis_serve.url, tmp_path / "state", cmd=[str(venv / "bin" / "banners")], cwd=where, env=env)
    took, out = server.stop(signal.SIGTERM)
    assert server.proc.returncode == 0 and "Traceback" not in out, out


@pytest.mark.parametrize("bind, code, words", [
    ("fd://99", 1, "file descriptor 99 is not open"),
    ("unix:", 2, "a unix socket needs its path"),
    ("", 2, "the address is empty"),
    ("tcp://127.0.0.1:81x", 2, "'81x' is not a valid port number"),
])
def test_binds_that_cannot_work_are_refused_before_anything_starts(bind, code, words, tmp_path):
    res = CliRunner().invoke(cli.main, ["serve", "--bind", bind, "--state-dir", str(tmp_path)])
    assert res.exit_code == code and words in res.output, res.output
    assert "IPv6" not in res.output and not (tmp_path / "redis.pid").exists()


@pytest.mark.parametrize("name", ["BANNERS_SECRET", "BANNERS_POSTBACK_TOKEN"])
def test_a_short_secret_is_a_usage_error_and_never_echoed(name, tmp_path):
    res = CliRunner().invoke(cli.main, ["serve", "--state-dir", str(tmp_path)], env={name: "hunter2"})
    assert res.exit_code == 2 and name in res.output and "hunter2" not in res.output, res.output
