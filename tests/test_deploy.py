"""deploy/: the commands the container, the compose file and the systemd units run.

There is no Docker daemon or systemd to run them under here, so each test reads the
command lines out of the artefact itself (Dockerfile CMD/ENV/HEALTHCHECK, compose
`command`/`environment`, unit `Exec*=`/`Environment=`), puts this checkout's venv and
temporary folders in place of the install paths, and runs them against a real
redis-server.  The addresses are the one thing not taken from the artefacts: servers
listen on a free loopback port, never 0.0.0.0:8000.  The linters (make deploy-check)
check the artefacts' syntax; these tests check that what they run works.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
import redis
import yaml
from click.testing import CliRunner

from banner_server.clients.embedded import free_port, redis_server_binary
from banner_server.web.tokens import ClickSigner
from tests.harness import RedisProcess
from tests.serving import KEYS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent


def _serve_reads_env() -> bool:
    """Whether `banners serve` takes its options from BANNERS_* variables: a malformed
    BANNERS_BIND must then be refused as a usage error, before Redis is touched."""
    from cli import main

    env = {"BANNERS_BIND": "127.0.0.1:notaport", "BANNERS_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = CliRunner().invoke(main, ["serve"], env=env)
    return result.exit_code == 2 and "notaport" in result.output


needs_serve_env = pytest.mark.skipif(
    not _serve_reads_env(),
    reason="`banners serve` does not read BANNERS_BIND yet (every serve option gets its BANNERS_* variable)")


# --- reading the artefacts ---------------------------------------------------------------

def dockerfile_final_stage(path: Path) -> dict:
    """ENV, CMD and HEALTHCHECK's command of the last stage of a Dockerfile."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stage = {"env": {}, "cmd": None, "healthcheck": None}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage = {"env": {}, "cmd": None, "healthcheck": None}
        elif word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                stage["env"][key] = value
        elif word == "CMD":
            stage["cmd"] = json.loads(rest)
        elif word == "HEALTHCHECK":
            stage["healthcheck"] = json.loads(rest[rest.index(" CMD ") + len(" CMD "):])
    return stage


def unit_file(path: Path) -> dict:
    """{section: {key: [values in order]}} of a systemd unit file."""
    sections: dict = {}
    current = None
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def env_file(path: Path) -> dict:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


class Paths:
    """Install paths of an artefact -> this machine's: exact, or as a folder prefix."""

    def __init__(self, mapping: dict):
        self.mapping = sorted(mapping.items(), key=lambda kv: -len(kv[0]))

    def __call__(self, value: str) -> str:
        for theirs, ours in self.mapping:
            if value == theirs or value.startswith(theirs.rstrip("/") + "/"):
                return str(ours) + value[len(theirs.rstrip("/")):]
        return value


def container_paths(state: Path, data: Path, credentials: Path | None = None) -> Paths:
    mapping = {"/opt/venv/bin": VENV_BIN, "/app": ROOT, "/var/lib/banners": state, "/data": data}
    if credentials:
        mapping["/var/lib/banners-secrets"] = credentials
    return Paths(mapping)


def container_argv(argv: list, paths: Paths) -> list:
    """The image's PATH starts with the venv's bin: bare `banners`/`python` are its."""
    first = argv[0] if "/" in argv[0] else str(VENV_BIN / argv[0])
    return [paths(first), *(paths(a) for a in argv[1:])]


SYSTEMD_SPECIFIERS = {"%S": "/var/lib", "%C": "/var/cache", "%t": "/run", "%%": "%"}


def systemd_argv(line: str, env: dict, paths: Paths, mainpid: int | None = None) -> list:
    """An Exec*= line as systemd would run it: prefixes, specifiers and $VARs expanded."""
    line = line.lstrip("-@:+!")
    for spec, value in SYSTEMD_SPECIFIERS.items():
        line = line.replace(spec, value)
    env = {**env, **({"MAINPID": str(mainpid)} if mainpid else {})}
    words = []
    for word in shlex.split(line):
        if re.fullmatch(r"\$\w+", word):  # "$FOO" alone: split into words, dropped when empty
            words.extend(env.get(word[1:], "").split())
            continue
        words.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word).replace("$$", "$"))
    return [paths(w) for w in words]


def unit_env(unit: dict, paths: Paths, overrides: dict) -> dict:
    """Environment= then EnvironmentFile= (which wins, as in systemd), then the test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANNERS_")}
    service = unit["Service"]
    for assignment in service.get("Environment", []):
        for pair in shlex.split(assignment):
            key, _, value = pair.partition("=")
            for spec, sub in SYSTEMD_SPECIFIERS.items():
                value = value.replace(spec, sub)
            env[key] = paths(value)
    for name in service.get("EnvironmentFile", []):
        env.update({k: paths(v) for k, v in env_file(Path(paths(name.lstrip("-")))).items()})
    env.update(overrides)
    return env


# --- running servers ---------------------------------------------------------------------

def get(port: int, path: str, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def wait_for(check, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, redis.RedisError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Proc:
    """A command of an artefact, in its own process group, stopped at the end."""

    def __init__(self, argv, env, cwd=ROOT):
        self.argv = argv
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, text=True)

    def output(self) -> str:
        self.stop()
        return self.proc.stdout.read()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_server(argv, env, port) -> Proc:
    server = Proc(argv, env)
    try:
        wait_for(lambda: server.proc.poll() is not None or get(port, "/healthz")[0] == 200, 30, "/healthz")
    except AssertionError:
        raise AssertionError(f"{argv} did not answer /healthz: {server.output()[-2000:]}") from None
    assert server.proc.poll() is None, server.output()[-2000:]
    return server


def running(pid: int) -> bool:
    # A daemon whose parent is gone may linger as a zombie until init reaps it.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def workers(server: Proc) -> set:
    return {c.pid for c in psutil.Process(server.proc.pid).children()}


@pytest.fixture(scope="module")
def redis_deploy():
    proc = RedisProcess().start()
    yield proc
    proc.close()


@pytest.fixture
def data(sample_dir, tmp_path):
    """A data folder the test may add files to."""
    target = tmp_path / "data"
    shutil.copytree(sample_dir(12, 0.01), target)
    return target


@pytest.fixture
def state():
    # Short: the embedded Redis' unix socket lives here (108-byte limit).
    path = Path(__import__("tempfile").mkdtemp(prefix="bsd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def banners_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANNERS_")}
    env.update(extra)
    return env


# --- the container -----------------------------------------------------------------------

def test_dockerfile_final_stage_is_what_the_tests_run():
    stage = dockerfile_final_stage(DEPLOY / "Dockerfile")
    assert stage["cmd"] == ["banners", "serve"]
    assert stage["env"]["BANNERS_BIND"] == "0.0.0.0:8000"
    assert stage["env"]["BANNERS_STATE_DIR"] == "/var/lib/banners"
    assert stage["healthcheck"] == ["python", "/app/deploy/healthcheck.py"]
    text = (DEPLOY / "Dockerfile").read_text()
    assert 'VOLUME ["/var/lib/banners"]' in text and "\nUSER 10001" in text


@needs_serve_env
def test_container_command_serves_with_the_embedded_redis_and_healthcheck(state, data):
    """`docker run image`: CMD with the image's ENV, no Redis URL: the embedded Redis in the volume."""
    stage = dockerfile_final_stage(DEPLOY / "Dockerfile")
    paths = container_paths(state, data)
    port = free_port()
    env = banners_env(**{k: paths(v) for k, v in stage["env"].items() if k != "PATH"})
    env.update(BANNERS_BIND=f"127.0.0.1:{port}", BANNERS_WORKERS="2")
    health = container_argv(stage["healthcheck"], paths)
    assert subprocess.run(health, env=env, capture_output=True).returncode == 1  # nothing listening yet
    server = start_server(container_argv(stage["cmd"], paths), env, port)
    try:
        assert subprocess.run(health, env=env, capture_output=True).returncode == 0
        assert (state / "redis.sock").exists() or (state / "redis.url").exists()
        # `docker run -v data:/data image banners load /data`, into the same embedded Redis
        load = subprocess.run(container_argv(["banners", "load", "/data", "--seed", "1"], paths), env=env,
                              capture_output=True, text=True, timeout=120)
        assert load.returncode == 0, load.stdout + load.stderr
        wait_for(lambda: get(port, "/readyz")[0] == 200, 10, "/readyz")
        status, _, body = get(port, "/campaigns/1", {"Accept": "application/json"})
        assert status == 200 and json.loads(body)["campaign_id"] == 1
    finally:
        server.stop()
        subprocess.run([str(VENV_BIN / "banners"), "redis", "stop", "--state-dir", str(state)], env=env)
    assert subprocess.run(health, env=env, capture_output=True).returncode == 1


# --- compose -----------------------------------------------------------------------------

def compose():
    return yaml.safe_load((DEPLOY / "compose.yml").read_text())["services"]


def test_compose_redis_command_persists_and_evicts_only_visitors(tmp_path):
    """The redis service's command, on the project's redis-server binary."""
    command = compose()["redis"]["command"]
    assert command[0] == "redis-server"
    sock = tmp_path / "r.sock"
    proc = subprocess.Popen([redis_server_binary(), *command[1:], "--port", "0", "--unixsocket", str(sock),
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        client = wait_for(lambda: (c := redis.Redis(unix_socket_path=str(sock))).ping() and c, 10, "redis")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
        assert int(client.config_get("maxmemory")["maxmemory"]) == 1024**3
        assert client.config_get("save")["save"]  # RDB snapshots too
    finally:
        proc.kill()
        proc.wait()


CREDENTIALS = ("BANNERS_SECRET", "BANNERS_POSTBACK_TOKEN", "BANNERS_ADMIN_TOKEN")
WRAPPER = ["python", "/app/deploy/secrets_env.py", "exec"]


def project_services(services: dict) -> dict:
    """The services that run the project's image, but the one that makes the credentials."""
    return {name: s for name, s in services.items()
            if s.get("image") == "banner-server:latest" and name != "credentials"}


def process_env(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_compose_credentials_made_once_and_given_to_every_service(tmp_path):
    """One secret per deployment: the one-shot service makes it in its volume, and every
    service of the image starts through the wrapper that reads that same file."""
    services = compose()
    maker = services["credentials"]
    assert maker["restart"] == "no" and maker["network_mode"] == "none"
    volume = next(v for v in maker["volumes"] if v.startswith("credentials:"))
    folder = volume.split(":")[1]
    path = maker["command"][-1]
    assert maker["command"][:-1] == ["python", "/app/deploy/secrets_env.py", "make"] and \
        path.startswith(folder + "/")
    # The image's owner of the folder is the user the services run as (named volumes
    # copy the ownership of the image's folder).
    text = (DEPLOY / "Dockerfile").read_text()
    assert folder in text and "chown banners:banners /var/lib/banners " + folder in text
    assert "deploy/secrets_env.py" in text

    paths = Paths({"/app": ROOT, folder: tmp_path})
    argv = container_argv(maker["command"], paths)
    first = subprocess.run(argv, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    made = env_file(Path(paths(path)))
    assert set(CREDENTIALS) <= set(made) and all(len(made[k]) >= 32 for k in CREDENTIALS)
    assert len({made[k] for k in CREDENTIALS}) == 3
    assert os.stat(paths(path)).st_mode & 0o777 == 0o600
    again = subprocess.run(argv, capture_output=True, text=True)  # the next `up`
    assert again.returncode == 0 and env_file(Path(paths(path))) == made

    users = project_services(services)
    assert {"server", "load"} <= set(users)
    for name, service in users.items():
        assert service["command"][:5] == [*WRAPPER, path, "--"], name
        assert f"credentials:{folder}:ro" in service["volumes"], name
        assert service["depends_on"]["credentials"] == {"condition": "service_completed_successfully"}, name
    assert services["server"]["command"][5:] == dockerfile_final_stage(DEPLOY / "Dockerfile")["cmd"]


@needs_serve_env
def test_compose_server_and_load_services(redis_deploy, data, state, tmp_path):
    """The server service and the load service's command, each through the credentials
    wrapper: it loads the folder once at start, and again when a file lands."""
    services = compose()
    stage = dockerfile_final_stage(DEPLOY / "Dockerfile")
    client = redis_deploy.client()
    client.flushall()
    paths = container_paths(state, data, tmp_path / "credentials")
    made = subprocess.run(container_argv(services["credentials"]["command"], paths), capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    credentials = env_file(Path(paths(services["credentials"]["command"][-1])))

    def service_env(name, **overrides):
        env = banners_env(**{k: paths(v) for k, v in stage["env"].items() if k != "PATH"})
        env.update({k: paths(str(v)) for k, v in services[name].get("environment", {}).items()})
        # compose's redis://redis:6379 is the fixture's redis-server here
        assert env["BANNERS_REDIS_URL"] == "redis://redis:6379/0"
        env.update(BANNERS_REDIS_URL=redis_deploy.url, **overrides)
        env["PATH"] = f"{VENV_BIN}:{env['PATH']}"  # the image's PATH starts with its venv's bin
        return env

    port = free_port()
    server_env = service_env("server", BANNERS_BIND=f"127.0.0.1:{port}", BANNERS_WORKERS="2")
    assert services["server"]["healthcheck"]["test"][1:] == stage["healthcheck"]
    server = start_server(container_argv(services["server"]["command"], paths), server_env, port)
    command = services["load"]["command"]
    wrapped = command[command.index("--") + 1:]
    assert wrapped[:2] == ["python", "/app/deploy/load_on_change.py"] and command[-1] == "/data"
    volumes = services["load"]["volumes"]
    assert any(v.endswith(":/data:ro") for v in volumes)
    # The intervals (10 s, 5 s) shortened: a test waits seconds, not minutes.
    fast = [{"10": "0.3", "5": "0.3"}.get(a, a) if command[i - 1] in ("--watch", "--settle") else a
            for i, a in enumerate(command)]
    (state / "load").mkdir()
    load = Proc(container_argv(fast, paths), service_env("load", BANNERS_STATE_DIR=str(state / "load")))
    try:
        # once the wrapper has exec'd into load_on_change.py
        seen = wait_for(lambda: (e := process_env(load.proc.pid)).get("BANNERS_SECRET") and e, 10, "the exec")
        assert {k: seen[k] for k in CREDENTIALS} == {k: credentials[k] for k in CREDENTIALS}
        first = wait_for(lambda: client.get(KEYS.current), 60, "the first load")
        wait_for(lambda: get(port, "/readyz")[0] == 200, 10, "/readyz")
        status, headers, body = get(port, "/campaigns/1", {"Accept": "application/json"})
        assert status == 200 and headers["X-Banners-Version"] == first.decode()
        # The server signs with the deployment's secret, not one of its own state folder.
        token = json.loads(body)["click_url"].removeprefix("/click/")
        assert ClickSigner(credentials["BANNERS_SECRET"].encode()).verify(token, time.time())[0] == 1
        assert not (state / "secret").exists()
        time.sleep(1)
        assert client.get(KEYS.current) == first  # nothing changed: no new load
        # A drop lands: a campaign of its own, in every quarter (the server's is the clock's).
        for q in "1234":
            (data / q / "impressions_late.csv").write_text(f"banner_id,campaign_id\n10{q},77777\n")
        second = wait_for(lambda: (v := client.get(KEYS.current)) != first and v, 60, "the second load")
        wait_for(lambda: get(port, "/campaigns/77777", {"Accept": "application/json"})[0] == 200, 10,
                 "the new campaign")
        assert get(port, "/campaigns/77777", {"Accept": "application/json"})[1]["X-Banners-Version"] == \
            second.decode()
        wait_for(lambda: not psutil.Process(load.proc.pid).children(), 30, "`banners load` to exit")
    finally:
        out = load.output()
        server.stop()
    assert out.count("banners load exited 0") == 2, out
    assert load.proc.returncode == 128 + signal.SIGTERM


# --- systemd -----------------------------------------------------------------------------

SYSTEMD = DEPLOY / "systemd"


def systemd_paths(state: Path, data: Path, etc: Path) -> Paths:
    """etc: this test's /etc/banners, with the secrets.env install-host.sh makes."""
    etc.mkdir(exist_ok=True)
    made = subprocess.run([sys.executable, str(DEPLOY / "secrets_env.py"), "make", str(etc / "secrets.env")],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return Paths({"/opt/banners/venv": VENV_BIN.parent, "/opt/banners/src": ROOT, "/var/lib/banners": state,
                  "/srv/banners/data": data, "/etc/banners/banners.env": SYSTEMD / "banners.env",
                  "/etc/banners/secrets.env": etc / "secrets.env"})


def test_units_that_run_the_project_read_the_deployments_credentials():
    """banners-serve refuses to start without the credentials file (a host must not sign
    with a secret of its own); it is read after banners.env, so its values win."""
    serve = unit_file(SYSTEMD / "banners-serve.service")["Service"]["EnvironmentFile"]
    assert serve == ["-/etc/banners/banners.env", "/etc/banners/secrets.env"]
    load = unit_file(SYSTEMD / "banners-load.service")["Service"]["EnvironmentFile"]
    assert load == ["-/etc/banners/banners.env", "-/etc/banners/secrets.env"]
    # install-host.sh makes it once (0600, kept when it exists) with the same script as compose.
    install = (DEPLOY / "install-host.sh").read_text()
    assert '"$src/deploy/secrets_env.py" make "$root/etc/banners/secrets.env"' in install


def test_units_share_state_and_sandbox():
    for name in ("banners-redis.service", "banners-serve.service", "banners-load.service"):
        service = unit_file(SYSTEMD / name)["Service"]
        assert service["DynamicUser"] == ["yes"] and service["User"] == ["banners"], name
        assert service["StateDirectory"] == ["banners"] and service["ProtectSystem"] == ["strict"], name
        assert service["NoNewPrivileges"] == ["yes"], name
        assert "BANNERS_STATE_DIR=%S/banners" in service["Environment"], name
    serve = unit_file(SYSTEMD / "banners-serve.service")
    assert serve["Service"]["Restart"] == ["always"] and serve["Service"]["Type"] == ["notify"]
    path = unit_file(SYSTEMD / "banners-load.path")["Path"]
    assert path["Unit"] == ["banners-load.service"]
    assert set(path["PathChanged"]) == {"/srv/banners/data", *(f"/srv/banners/data/{q}" for q in "1234")}


def test_redis_unit_skips_itself_for_an_external_redis(state, data, tmp_path):
    unit = unit_file(SYSTEMD / "banners-redis.service")
    paths = systemd_paths(state, data, tmp_path / "etc")
    for url, expected in (("", 0), ("rediss://:token@redis.example:6379/0", 1)):
        env = unit_env(unit, paths, {"BANNERS_REDIS_URL": url})
        argv = systemd_argv(unit["Service"]["ExecCondition"][0], env, paths)
        assert subprocess.run(argv, env=env).returncode == expected, (url, argv)


@needs_serve_env
def test_units_embedded_redis_load_serve_and_reload(state, data, tmp_path):
    """banners-redis, then banners-load (as the path unit starts it), then banners-serve;
    `systemctl reload` (ExecReload) replaces every worker and the server keeps answering."""
    paths = systemd_paths(state, data, tmp_path / "etc")
    secret = env_file(tmp_path / "etc" / "secrets.env")["BANNERS_SECRET"]
    port = free_port()
    overrides = {"BANNERS_BIND": f"127.0.0.1:{port}", "BANNERS_WORKERS": "2"}
    redis_unit = unit_file(SYSTEMD / "banners-redis.service")
    redis_env = unit_env(redis_unit, paths, overrides)
    assert Path(redis_env["BANNERS_STATE_DIR"]) == state and "BANNERS_REDIS_URL" not in redis_env
    start = subprocess.run(systemd_argv(redis_unit["Service"]["ExecStart"][0], redis_env, paths), env=redis_env,
                           capture_output=True, text=True, timeout=30)
    assert start.returncode == 0, start.stderr
    server = None
    try:
        # Type=forking: systemd follows the pid in PIDFile=
        pidfile = Path(systemd_argv(redis_unit["Service"]["PIDFile"][0], redis_env, paths)[0])
        redis_pid = int(pidfile.read_text())
        assert psutil.Process(redis_pid).name().startswith("redis-server")

        load_unit = unit_file(SYSTEMD / "banners-load.service")
        load_env = unit_env(load_unit, paths, overrides)
        load = subprocess.run(systemd_argv(load_unit["Service"]["ExecStart"][0], load_env, paths), env=load_env,
                              capture_output=True, text=True, timeout=120)
        assert load.returncode == 0, load.stdout + load.stderr
        assert (state / "rejected.jsonl").exists()  # the state folder is the units' shared one

        serve_unit = unit_file(SYSTEMD / "banners-serve.service")
        serve_env = unit_env(serve_unit, paths, overrides)
        server = start_server(systemd_argv(serve_unit["Service"]["ExecStart"][0], serve_env, paths), serve_env, port)
        wait_for(lambda: get(port, "/readyz")[0] == 200, 10, "/readyz")
        old = wait_for(lambda: len(w := workers(server)) == 2 and w, 10, "two workers")
        # It signs with the deployment's secret (secrets.env), not one of its state folder.
        token = json.loads(get(port, "/campaigns/1", {"Accept": "application/json"})[2])["click_url"]
        assert ClickSigner(secret.encode()).verify(token.removeprefix("/click/"), time.time())[0] == 1
        assert not (state / "secret").exists()

        reload = systemd_argv(serve_unit["Service"]["ExecReload"][0], serve_env, paths, mainpid=server.proc.pid)
        assert reload[-1] == str(server.proc.pid)
        assert subprocess.run(reload, env=serve_env).returncode == 0
        new = wait_for(lambda: len(w := workers(server)) == 2 and not (w & old) and w, 20, "new workers")
        assert server.proc.poll() is None and not new & old
        status, _, body = get(port, "/campaigns/1", {"Accept": "application/json"})
        assert status == 200 and json.loads(body)["campaign_id"] == 1
    finally:
        if server:
            server.stop()
        stop = subprocess.run(systemd_argv(redis_unit["Service"]["ExecStop"][0], redis_env, paths), env=redis_env,
                              capture_output=True, text=True, timeout=30)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert not running(redis_pid)


# --- load_on_change.py: what the path unit and the load service rely on --------------------

def run_once(data: Path, env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEPLOY / "load_on_change.py"), "--settle", "0.3", *args, str(data),
                           "--", "--seed", "1"], env=env, capture_output=True, text=True, timeout=120)


def test_load_once_waits_for_a_drop_to_settle(redis_deploy, data, tmp_path):
    """Files still landing when the path unit fires: one load, of all of them."""
    client = redis_deploy.client()
    client.flushall()
    env = banners_env(BANNERS_REDIS_URL=redis_deploy.url, BANNERS_STATE_DIR=str(tmp_path / "state"))
    quarter4 = data / "4"
    held = tmp_path / "held"
    shutil.move(quarter4, held)
    proc = subprocess.Popen([sys.executable, str(DEPLOY / "load_on_change.py"), "--settle", "1", str(data)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    shutil.move(held, quarter4)  # the last quarter lands while the loader waits
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert out.count("banners load exited") == 1, out
    meta = client.hgetall(KEYS.meta(client.get(KEYS.current).decode()))
    assert json.loads(meta[b"quarters"]) == [1, 2, 3, 4]


def test_load_once_exit_status_and_empty_folder(tmp_path):
    env = banners_env(BANNERS_REDIS_URL="redis://127.0.0.1:1/0", BANNERS_STATE_DIR=str(tmp_path / "state"))
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_once(empty, env)
    assert result.returncode == 0 and "nothing to load" in result.stdout
    (empty / "1").mkdir()
    (empty / "1" / "clicks_1.csv").write_text("click_id,banner_id,campaign_id\n1,100,1\n")
    result = run_once(empty, env)  # Redis unreachable: the load's own exit status, 1
    assert result.returncode == 1, result.stdout + result.stderr
    assert run_once(tmp_path / "missing", env).returncode == 2


# --- AWS: what cannot run here is checked against the template ---------------------------

class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short forms (!Ref, !Sub, ...) as {"Fn::...": value}."""


def _cfn_tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def template() -> dict:
    return yaml.load((DEPLOY / "aws" / "banners.yaml").read_text(), Loader=CfnLoader)


def user_data(launch_template: dict) -> tuple[str, dict]:
    """The user data script and its !Sub variables."""
    sub = launch_template["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    return (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})


def user_data_exports(script: str) -> dict:
    """NAME -> the ${...} it is set to, from the script's `export` command."""
    text = script.replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.strip().startswith("export "))
    return dict(re.findall(r"(\w+)='\$\{([\w:.]+)\}'", line))


@pytest.mark.parametrize("launch_template", ["WebTemplate", "LoaderTemplate"])
def test_user_data_is_clean_shell_calling_the_bootstrap(launch_template, tmp_path):
    """The hosts' user data runs only in EC2: ShellCheck reads it here, with the
    template's ${...} placeholders filled in."""
    resource = template()["Resources"][launch_template]
    script, _ = user_data(resource)
    role = "web" if launch_template == "WebTemplate" else "loader"
    assert f"/opt/banners/src/deploy/aws/bootstrap.sh {role}\n" in script
    assert f"--resource {role.capitalize()}Group " in script  # signals its own group's CreationPolicy
    path = tmp_path / "user-data.sh"
    path.write_text(re.sub(r"\$\{([\w:.]+)\}", "placeholder", script))
    check = subprocess.run([str(VENV_BIN / "shellcheck"), str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_deploy_script_passes_only_parameters_the_template_has(tmp_path):
    """deploy.sh with a recording `aws` first on PATH (there is no cloud to call)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls"
    (fake / "aws").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {calls}\necho ---- >> {calls}\n')
    (fake / "aws").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "VPC_ID": "vpc-1", "VPC_CIDR": "10.1.0.0/16",
           "LB_SUBNETS": "subnet-a,subnet-b", "INSTANCE_SUBNETS": "subnet-c,subnet-d",
           "REPO": "https://git.example/banner-server.git", "KEY_NAME": "ops", "SSH_CIDR": "192.0.2.0/24",
           "INSTANCE_TYPE": "c6i.large", "ALLOWED_CIDR": "0.0.0.0/0", "WEB_MIN": "3", "WEB_MAX": "9",
           "CACHE_NODE_TYPE": "cache.m7g.large",
           "CERTIFICATE_ARN": "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"}
    run = subprocess.run([str(DEPLOY / "aws" / "deploy.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    deploy, describe, _ = calls.read_text().split("----\n")
    argv = deploy.split("\n")[:-1]
    assert argv[:2] == ["cloudformation", "deploy"]
    assert argv[argv.index("--template-file") + 1] == str(DEPLOY / "aws" / "banners.yaml")
    assert "CAPABILITY_IAM" in argv
    overrides = dict(a.split("=", 1) for a in argv[argv.index("--parameter-overrides") + 1:])
    parameters = template()["Parameters"]
    assert set(overrides) <= set(parameters)
    # every parameter without a default is given, and each value is one the template allows
    assert {name for name, p in parameters.items() if "Default" not in p} <= set(overrides)
    for name, value in overrides.items():
        assert value in parameters[name].get("AllowedValues", [value]), name
        assert re.fullmatch(parameters[name].get("AllowedPattern", ".*"), value), name
    assert overrides["CertificateArn"] == env["CERTIFICATE_ARN"]
    assert overrides["LoadBalancerSubnets"] == "subnet-a,subnet-b" and overrides["KeyName"] == "ops"
    assert describe.startswith("cloudformation\ndescribe-stacks\n")

    missing = subprocess.run([str(DEPLOY / "aws" / "deploy.sh")], env={**env, "VPC_ID": ""}, capture_output=True,
                             text=True)
    assert missing.returncode != 0 and "VPC_ID" in missing.stderr


def fake_host(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A host as bootstrap.sh sees it: the checkout (bootstrap.sh, secrets_env.py and an
    install-host.sh that only does its credentials step: the real one builds a venv),
    a root for DESTDIR, and a bin folder with `aws` and `systemctl` that only record."""
    host = tmp_path / name
    src = host / "src"
    (src / "deploy" / "aws").mkdir(parents=True)
    shutil.copy(DEPLOY / "aws" / "bootstrap.sh", src / "deploy" / "aws" / "bootstrap.sh")
    shutil.copy(DEPLOY / "secrets_env.py", src / "deploy" / "secrets_env.py")
    install = src / "deploy" / "install-host.sh"
    install.write_text('#!/bin/sh\nset -eu\nsrc=$(cd "$(dirname "$0")/.." && pwd)\nroot=${DESTDIR:-}\n'
                       f'(umask 077 && {sys.executable} "$src/deploy/secrets_env.py" make '
                       '"$root/etc/banners/secrets.env")\n')
    root = host / "root"
    python = root / "opt" / "banners" / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    bin_ = host / "bin"
    bin_.mkdir()
    # Secrets Manager: the value of a secret is derived from its id (the ARN).
    (bin_ / "aws").write_text('#!/bin/sh\nwhile [ "$1" != --secret-id ]; do shift; done\necho "value-of-$2"\n')
    (bin_ / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {host}/systemctl\n')
    python.write_text("#!/bin/sh\nexit 0\n")  # the health check: the server answers
    for program in (install, bin_ / "aws", bin_ / "systemctl", python):
        program.chmod(0o755)
    return src, root, bin_


def test_every_aws_host_gets_the_same_credentials_from_secrets_manager(tmp_path):
    """Two hosts of the stack (and one bootstrapped again, as a replacement is): the
    same secrets.env, whose values are the stack's Secrets Manager secrets."""
    resources = template()["Resources"]
    exports = {}
    for role in ("Web", "Loader"):
        script, variables = user_data(resources[f"{role}Template"])
        exports[role] = user_data_exports(script)
    assert exports["Web"] == exports["Loader"]
    names = {"BANNERS_SECRET_ARN": "BannersSecret", "POSTBACK_TOKEN_ARN": "PostbackToken",
             "ADMIN_TOKEN_ARN": "AdminToken", "REDIS_SECRET": "RedisAuthToken"}
    for variable, resource in names.items():
        assert exports["Web"][variable] == resource
        secret = resources[resource]
        assert secret["Type"] == "AWS::SecretsManager::Secret"
        assert secret["Properties"]["GenerateSecretString"]["ExcludePunctuation"] is True
    # Each role reads those four secrets and no other.
    for role in ("WebRole", "LoaderRole"):
        statements = [st for policy in resources[role]["Properties"]["Policies"]
                      for st in policy["PolicyDocument"]["Statement"]]
        reads = [st for st in statements if "secretsmanager:GetSecretValue" in st["Action"]]
        assert len(reads) == 1 and sorted(r["Ref"] for r in reads[0]["Resource"]) == sorted(names.values()), role
        assert all("secretsmanager" not in str(st["Action"]) or st in reads for st in statements)

    env = {"AWS_REGION": "eu-west-1", "REDIS_HOST": "redis.internal", "REDIS_PORT": "6379",
           "DATA_BUCKET": "drops", "TRUSTED_PROXY": "10.0.0.0/16", "COOKIE_SECURE": "true"}
    env.update({variable: f"arn-{ref}" for variable, ref in exports["Web"].items() if ref in names.values()})
    made = {}
    for host, role in (("a", "web"), ("b", "loader"), ("a", "web")):
        src, root, bin_ = fake_host(tmp_path, host) if not (tmp_path / host).exists() else \
            (tmp_path / host / "src", tmp_path / host / "root", tmp_path / host / "bin")
        run = subprocess.run([str(src / "deploy" / "aws" / "bootstrap.sh"), role], capture_output=True, text=True,
                             env={**os.environ, **env, "DESTDIR": str(root),
                                  "PATH": f"{bin_}:{os.environ['PATH']}"}, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        path = root / "etc" / "banners" / "secrets.env"
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert not list(path.parent.glob("*.new"))
        made.setdefault(host, []).append(env_file(path))
        settings = env_file(root / "etc" / "banners" / "banners.env")
        assert settings["BANNERS_REDIS_URL"] == "rediss://:value-of-arn-RedisAuthToken@redis.internal:6379/0"
        assert settings["BANNERS_COOKIE_SECURE"] == "true"
    expected = {"BANNERS_SECRET": "value-of-arn-BannersSecret",
                "BANNERS_POSTBACK_TOKEN": "value-of-arn-PostbackToken",
                "BANNERS_ADMIN_TOKEN": "value-of-arn-AdminToken"}
    assert made["a"] == [expected, expected] and made["b"] == [expected]


def test_https_listener_with_a_certificate_and_http_redirects_to_it():
    """With CertificateArn: 443 (TLS 1.2+), 80 answers 301 to https.  Without: HTTP only.
    The health check is the target group's (HTTP to the hosts on 8000), either way."""
    doc = template()
    resources = doc["Resources"]
    assert doc["Parameters"]["CertificateArn"]["Default"] == ""
    assert doc["Conditions"]["HasCertificate"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]}
    https = resources["HttpsListener"]
    assert https["Condition"] == "HasCertificate"
    props = https["Properties"]
    assert props["Protocol"] == "HTTPS" and props["Port"] == 443
    assert props["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    assert "TLS13" in props["SslPolicy"]
    assert props["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": "WebTargets"}}]
    condition, redirect, forward = resources["HttpListener"]["Properties"]["DefaultActions"][0]["Fn::If"]
    assert condition == "HasCertificate"
    assert redirect["Type"] == "redirect" and redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301" and redirect["RedirectConfig"]["Port"] == "443"
    assert forward == {"Type": "forward", "TargetGroupArn": {"Ref": "WebTargets"}}
    ingress = resources["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress[1]["Fn::If"][0] == "HasCertificate" and ingress[1]["Fn::If"][1]["FromPort"] == 443
    targets = resources["WebTargets"]["Properties"]
    assert targets["Protocol"] == "HTTP" and targets["Port"] == 8000 and targets["HealthCheckPath"] == "/readyz"
    # The visitor cookie is marked Secure exactly when the clients come over HTTPS.
    for role in ("Web", "Loader"):
        _, variables = user_data(resources[f"{role}Template"])
        assert variables["CookieSecure"] == {"Fn::If": ["HasCertificate", "true", "false"]}
    pattern = doc["Parameters"]["CertificateArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and \
        re.fullmatch(pattern, "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab")


def status_of(port: int, path: str) -> int:
    """The answer's status, redirects not followed (a click's landing page is not ours to fetch)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


@needs_serve_env
def test_a_click_served_by_one_host_is_followed_by_another(redis_deploy, data, tmp_path):
    """Two hosts as install-host.sh/bootstrap.sh set them up: one shared Redis, a state
    folder each, the deployment's secrets.env on both.  Before it, each host made its
    own secret: a click URL from A answered 400 on B (and was not recorded)."""
    client = redis_deploy.client()
    client.flushall()
    serve_unit = unit_file(SYSTEMD / "banners-serve.service")
    etc = tmp_path / "etc"
    servers, ports = [], []
    try:
        for host in ("a", "b"):
            state = Path(__import__("tempfile").mkdtemp(prefix=f"bs{host}-", dir="/tmp"))
            paths = systemd_paths(state, data, etc)  # the same secrets.env: copied to every host
            port = free_port()
            env = unit_env(serve_unit, paths, {"BANNERS_BIND": f"127.0.0.1:{port}", "BANNERS_WORKERS": "1",
                                               "BANNERS_REDIS_URL": redis_deploy.url})
            if not servers:
                load = subprocess.run([str(VENV_BIN / "banners"), "load", str(data), "--seed", "1"], env=env,
                                      capture_output=True, text=True, timeout=120)
                assert load.returncode == 0, load.stdout + load.stderr
            servers.append((start_server(systemd_argv(serve_unit["Service"]["ExecStart"][0], env, paths), env,
                                         port), state))
            ports.append(port)
        for port in ports:
            wait_for(lambda: get(port, "/readyz")[0] == 200, 10, "/readyz")
        status, _, body = get(ports[0], "/campaigns/1", {"Accept": "application/json"})
        assert status == 200
        click = json.loads(body)["click_url"]
        assert status_of(ports[1], click) == 302
        assert status_of(ports[0], click) == 302
    finally:
        for server, state in servers:
            server.stop()
            shutil.rmtree(state, ignore_errors=True)
