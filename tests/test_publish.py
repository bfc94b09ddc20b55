"""Publishing, reading back, atomic switch and failure half-way (fakeredis and real Redis)."""

import pytest
import redis

import loader.publish as publish_mod
from banner_server.catalog import current_version, read_selections, read_status
from banner_server.keys import Keys
from loader.pipeline import compute
from loader.publish import CleanupFailed, LoadLock, LoadRunning, PublishError, publish

KEYS = Keys()


@pytest.fixture(scope="module")
def sample(sample_dir):
    return sample_dir(3, 0.02)


@pytest.fixture(scope="module")
def result(sample):
    return compute(sample, seed=9)


def test_publish_and_read_back(any_redis, result):
    ver = publish(any_redis, KEYS, result, {"seed": 9})
    got_ver, records = read_selections(any_redis, KEYS)
    assert got_ver == ver
    by_key = {(r["quarter"], r["campaign_id"]): r for r in records}
    assert len(by_key) == result.selections.select("quarter", "campaign_id").n_unique()
    for (q, c), rec in by_key.items():
        members = {int(m) for m in any_redis.smembers(KEYS.selection_set(ver, q, c))}
        assert members == {b["banner_id"] for b in rec["banners"]}
        scores = dict(any_redis.zrange(KEYS.selection_zset(ver, q, c), 0, -1, withscores=True))
        assert {int(k): v for k, v in scores.items()} == {b["banner_id"]: b["revenue"] for b in rec["banners"]}
        assert str(c).encode() in any_redis.smembers(KEYS.campaigns(ver, q))
    status = read_status(any_redis, KEYS)
    assert status["seed"] == 9 and len(status["files"]) == 12
    assert all(len(f["sha256"]) == 64 for f in status["files"])


def test_new_version_replaces_old_and_old_keys_go(any_redis, result):
    v1 = publish(any_redis, KEYS, result, {})
    v2 = publish(any_redis, KEYS, result, {})
    assert current_version(any_redis, KEYS) == v2 != v1
    assert list(any_redis.scan_iter(match=KEYS.version(v1) + "*")) == []
    assert any_redis.smembers(KEYS.versions) == {v2.encode()}


def test_failure_half_way_leaves_previous_version_serving(any_redis, result, monkeypatch):
    v1 = publish(any_redis, KEYS, result, {"seed": 1})
    before = read_selections(any_redis, KEYS)
    real_write = publish_mod._write_version

    def half_then_die(r, keys, ver, res, meta):
        r.sadd(keys.selection_set(ver, 1, 1), 123)
        raise redis.ConnectionError("connection lost")

    monkeypatch.setattr(publish_mod, "_write_version", half_then_die)
    with pytest.raises(redis.ConnectionError):
        publish(any_redis, KEYS, result, {"seed": 2})
    assert read_selections(any_redis, KEYS) == before
    assert current_version(any_redis, KEYS) == v1
    monkeypatch.setattr(publish_mod, "_write_version", real_write)
    v3 = publish(any_redis, KEYS, result, {"seed": 3})
    assert read_selections(any_redis, KEYS)[1] == before[1]
    assert any_redis.smembers(KEYS.versions) == {v3.encode()}


def test_killed_half_way_leftovers_are_removed_by_next_load(any_redis, result):
    v1 = publish(any_redis, KEYS, result, {})
    # a load that died after writing some keys, before the switch, lock expired
    any_redis.sadd(KEYS.versions, "99")
    any_redis.sadd(KEYS.selection_set("99", 1, 1), 5)
    assert current_version(any_redis, KEYS) == v1
    v2 = publish(any_redis, KEYS, result, {})
    assert not any_redis.exists(KEYS.selection_set("99", 1, 1))
    assert any_redis.smembers(KEYS.versions) == {v2.encode()}


def test_concurrent_load_is_refused(any_redis, result):
    any_redis.set(KEYS.load_lock, "someone-else", px=5000)
    with pytest.raises(LoadRunning, match=r"another load is running \(its lease ends in [0-5]\.\d s"):
        publish(any_redis, KEYS, result, {})
    assert any_redis.get(KEYS.load_lock) == b"someone-else"  # and not released by the loser


def test_load_lock_is_one_at_a_time_and_only_its_owner_releases_it(any_redis):
    first = LoadLock(any_redis, KEYS, lease=5).acquire()
    assert 0 < any_redis.pttl(KEYS.load_lock) <= 5000
    with pytest.raises(LoadRunning):
        LoadLock(any_redis, KEYS).acquire()
    first.release()
    assert not any_redis.exists(KEYS.load_lock)
    # A lock that expired while its owner was paused and was taken by another load
    # is not released by the first owner when it wakes up.
    stale = LoadLock(any_redis, KEYS, lease=5).acquire()
    any_redis.delete(KEYS.load_lock)
    with LoadLock(any_redis, KEYS) as current:
        stale.release()
        assert any_redis.get(KEYS.load_lock) == current.token.encode()


def test_a_load_that_lost_its_lock_cannot_switch(any_redis, result):
    v1 = publish(any_redis, KEYS, result, {})
    with LoadLock(any_redis, KEYS) as lock:
        any_redis.set(KEYS.load_lock, "another-load")  # ours expired; another load took it
        with pytest.raises(PublishError, match="lost its lock"):
            publish(any_redis, KEYS, result, {}, lock)
    assert current_version(any_redis, KEYS) == v1
    assert any_redis.smembers(KEYS.versions) == {v1.encode()}  # its own version was removed


def test_cleanup_failing_after_the_switch_says_the_new_version_is_current(any_redis, result, monkeypatch):
    v1 = publish(any_redis, KEYS, result, {})

    def fail_delete(*args):
        raise redis.ConnectionError("connection lost")

    monkeypatch.setattr(publish_mod, "_delete_version", fail_delete)
    with pytest.raises(CleanupFailed) as err:
        publish(any_redis, KEYS, result, {})
    assert current_version(any_redis, KEYS) == err.value.version != v1
    assert "connection lost" in err.value.reason
    assert not any_redis.exists(KEYS.load_lock)


def test_same_folder_twice_publishes_same_selections(any_redis, sample):
    publish(any_redis, KEYS, compute(sample, seed=4), {})
    first = read_selections(any_redis, KEYS)[1]
    publish(any_redis, KEYS, compute(sample, seed=4), {})
    assert read_selections(any_redis, KEYS)[1] == first
