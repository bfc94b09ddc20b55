import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import fakeredis
import pytest
import redis
from hypothesis import settings

from banner_server.embedded_redis import redis_server_binary

# CI (`.ci/run` sets HYPOTHESIS_PROFILE=ci) runs the same examples every time, so a
# submission lands or not on its own merits; a plain `make test` explores new random
# examples each run, and `make fuzz` twenty times as many: that is how bugs get found.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
_FUZZ_SCALE = int(os.environ.get("BANNERS_FUZZ_SCALE") or 1)


def examples(n: int) -> int:
    """How many examples a property test draws: n, times BANNERS_FUZZ_SCALE."""
    return n * _FUZZ_SCALE

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datachef"


class RedisProcess:
    """A real redis-server on a unix socket in a temporary folder, for one test module."""

    def __init__(self, *extra: str):
        self.dir = Path(tempfile.mkdtemp(prefix="bsr-", dir="/tmp"))
        self.socket = self.dir / "r.sock"
        self.extra = extra
        self.proc = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> "RedisProcess":
        args = [redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket),
                "--save", "", "--appendonly", "no", "--dir", str(self.dir), *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(unix_socket_path=str(self.socket), **self._auth()).ping():
                    return self
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.02)
            except redis.AuthenticationError:
                return self
        raise RuntimeError("redis-server did not start")

    def _auth(self):
        if "--requirepass" in self.extra:
            return {"password": self.extra[self.extra.index("--requirepass") + 1]}
        return {}

    def client(self, **kw) -> redis.Redis:
        return redis.Redis.from_url(self.url, **self._auth(), **kw)

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.thaw()
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_proc():
    proc = RedisProcess().start()
    yield proc
    proc.close()


@pytest.fixture
def real_redis(redis_proc):
    if redis_proc.proc.poll() is not None:
        redis_proc.start()
    client = redis_proc.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture(params=["fake", "real"])
def any_redis(request):
    """Every behaviour that touches Redis runs against fakeredis and the real binary."""
    if request.param == "fake":
        yield fakeredis.FakeRedis()
    else:
        yield request.getfixturevalue("real_redis")


@pytest.fixture(params=["fake", "real", "real-fastredis"])
def server_redis(request):
    """(client, fast) for server tests: fakeredis, and the real binary through redis-py's
    Script and through FastRedis, the client production runs the pick with."""
    from banner_server.fastredis import FastRedis

    if request.param == "fake":
        yield fakeredis.FakeRedis(), None
        return
    client = request.getfixturevalue("real_redis")
    if request.param == "real":
        yield client, None
        return
    fast = FastRedis(request.getfixturevalue("redis_proc").url, timeout=1)
    yield client, fast
    fast.close()


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """make(seed, scale) -> a folder of `banners sample-data`, written once per session."""
    from loader.sample_data import write_sample

    made = {}

    def make(seed: int, scale: float) -> Path:
        if (seed, scale) not in made:
            root = tmp_path_factory.mktemp(f"sample-{seed}-{scale}")
            write_sample(root, seed=seed, scale=scale)
            made[seed, scale] = root
        return made[seed, scale]

    return make


@pytest.fixture
def datachef():
    csv = SHARED / "csv"
    if not csv.is_dir():
        pytest.skip("../shared/datachef is absent")
    return SHARED
