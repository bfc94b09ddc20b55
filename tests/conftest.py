import os
import tempfile
from pathlib import Path

import fakeredis
import pytest
from hypothesis import settings

from tests.harness import LocalCluster, LocalSentinel, RedisProcess

# CI (`.ci/run` sets HYPOTHESIS_PROFILE=ci) runs the same examples every time, so a
# submission lands or not on its own merits; a plain `make test` explores new random
# examples each run, and `make fuzz` twenty times as many: that is how bugs get found.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
_FUZZ_SCALE = int(os.environ.get("BANNERS_FUZZ_SCALE") or 1)

# The servers the tests start share a few Redis instances, each with a state folder of
# its own: as one deployment, they sign with one secret, or `banners serve` refuses to
# start beside another that recorded a different one (tests/test_fleet.py).  A test
# that needs a server with a secret of its own removes or sets the variable.
os.environ.setdefault("BANNERS_SECRET", "the-tests-one-signing-secret-0123456789")


@pytest.fixture(autouse=True)
def _roomy_render_budget(request, monkeypatch):
    """The dashboard refuses uncached pages past a wall-clock rendering budget (0.5 s of
    debt): on a loaded test machine a few pages in a row ran past it (503 in a test of
    the figures).  Tests of the budget itself drive it with their own clock."""
    if "render_budget" not in request.keywords:
        from banner_server.web import dashboard

        monkeypatch.setattr(dashboard, "RENDER_BURST", 60.0)


def examples(n: int) -> int:
    """How many examples a property test draws: n, times BANNERS_FUZZ_SCALE."""
    return n * _FUZZ_SCALE

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datachef"



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
    from banner_server.clients.fast import FastRedis

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


@pytest.fixture(scope="session")
def _cluster_session():
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="bsc-", dir="/tmp")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def redis_cluster(_cluster_session):
    """A running Redis Cluster (3 masters, 3 replicas), healthy and empty at the start of
    each test: what a test killed, froze or half-migrated is put right (restarting a
    node costs about a second)."""
    _cluster_session.heal()
    return _cluster_session


@pytest.fixture(scope="session")
def _sentinel_session():
    sentinel = LocalSentinel(Path(tempfile.mkdtemp(prefix="bss-", dir="/tmp")))
    try:
        sentinel.start()
        yield sentinel
    finally:
        sentinel.close()


@pytest.fixture
def redis_sentinel(_sentinel_session):
    """A primary, its replica and three sentinels, settled and empty at the start of each
    test (after a failover the old primary is back as a replica: roles may be swapped)."""
    _sentinel_session.heal()
    return _sentinel_session
