"""Publishing, reading back, atomic switch, failure half-way, kept versions and
rollback (fakeredis and real Redis)."""

import json

import pytest
import redis

import loader.publish as publish_mod
from banner_server.layout.catalog import current_version, kept_versions, list_versions, read_selections, read_status
from banner_server.layout.keys import Keys
from loader.pipeline import compute
from loader.publish import (KEEP_VERSIONS, CleanupFailed, LoadLock, LoadRunning, PublishError, RollbackError,
                            publish, rollback, selection_changes)
from tests.serving import ADMIN, STANDARD, make_client, publish_rows, selections

KEYS = Keys()


def keys_of(r, ver):
    return list(r.scan_iter(match=KEYS.version(ver) + "*"))


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
    status = read_status(any_redis, KEYS)
    assert status["seed"] == 9 and len(status["files"]) == 13  # 12 data files and campaigns.csv
    assert all(len(f["sha256"]) == 64 for f in status["files"])


def test_the_newest_four_versions_are_kept_and_older_ones_go(any_redis, result):
    vers = [publish(any_redis, KEYS, result, {"seed": i}) for i in range(KEEP_VERSIONS + 2)]
    assert KEEP_VERSIONS == 4 and current_version(any_redis, KEYS) == vers[-1]
    kept = vers[-KEEP_VERSIONS:]
    for gone in vers[:-KEEP_VERSIONS]:
        assert keys_of(any_redis, gone) == []  # was: every version but the current one deleted
    for ver in kept:
        assert read_selections(any_redis, KEYS, ver)[0] == ver
    assert any_redis.smembers(KEYS.versions) == {v.encode() for v in kept}
    assert kept_versions(any_redis, KEYS) == (vers[-1], kept)
    listed = list_versions(any_redis, KEYS)
    assert [v["version"] for v in listed] == kept[::-1]  # newest first
    assert [v["current"] for v in listed] == [True, False, False, False]
    assert [v["seed"] for v in listed] == [5, 4, 3, 2]
    assert listed[0]["banners"] is None  # a meta without it (this publish got none) reads as None


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
    assert any_redis.smembers(KEYS.versions) == {v1.encode(), v3.encode()}  # the half one is gone
    assert kept_versions(any_redis, KEYS) == (v3, [v1, v3])


def test_killed_half_way_leftovers_are_removed_by_next_load(any_redis, result):
    v1 = publish(any_redis, KEYS, result, {})
    # a load that died after writing some keys, before the switch, lock expired: its
    # selections JSON (written first) lists what it has
    any_redis.sadd(KEYS.versions, "99")
    any_redis.set(KEYS.selections("99"), '[{"quarter": 1, "campaign_id": 1, "banners": []}]')
    any_redis.sadd(KEYS.selection_set("99", 1, 1), 5)
    assert current_version(any_redis, KEYS) == v1
    v2 = publish(any_redis, KEYS, result, {})
    assert not any_redis.exists(KEYS.selection_set("99", 1, 1)) and not any_redis.exists(KEYS.selections("99"))
    assert any_redis.smembers(KEYS.versions) == {v1.encode(), v2.encode()}
    assert kept_versions(any_redis, KEYS) == (v2, [v1, v2])  # never switched to: not kept


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
    assert kept_versions(any_redis, KEYS) == (v1, [v1])


def test_cleanup_failing_after_the_switch_says_the_new_version_is_current(any_redis, result, monkeypatch):
    v1 = [publish(any_redis, KEYS, result, {}) for _ in range(KEEP_VERSIONS)][-1]

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


V1 = STANDARD
V2 = [(q, 7, [7001, 7002, 7003]) for q in (1, 2, 3, 4)]
V3 = [(q, 7, [8001, 8002]) for q in (1, 2, 3, 4)]


def test_rollback_goes_one_load_back_each_time_and_forward_by_name(any_redis):
    v1, v2, v3 = (publish_rows(any_redis, rows) for rows in (V1, V2, V3))
    assert rollback(any_redis, KEYS) == (v3, v2)
    assert current_version(any_redis, KEYS) == v2
    assert {int(m) for m in any_redis.smembers(KEYS.selection_set(v2, 1, 7))} == {7001, 7002, 7003}
    assert rollback(any_redis, KEYS) == (v2, v1)  # a second rollback: one more load back
    with pytest.raises(RollbackError, match=f"version {v1} is the oldest kept version") as err:
        rollback(any_redis, KEYS)
    assert err.value.kept == [v1, v2, v3] and err.value.current == v1
    assert rollback(any_redis, KEYS, v3) == (v1, v3)  # forward again, by name
    assert rollback(any_redis, KEYS, v2.split("-")[0]) == (v3, v2)  # by its number alone
    assert rollback(any_redis, KEYS, v2) == (v2, v2)  # already current: nothing to do
    for unknown in ("99", "99-abcdef", v1 + "x", ""):
        with pytest.raises(RollbackError, match="no kept version"):
            rollback(any_redis, KEYS, unknown)
    assert current_version(any_redis, KEYS) == v2
    assert kept_versions(any_redis, KEYS) == (v2, [v1, v2, v3])  # a rollback deletes nothing
    assert not any_redis.exists(KEYS.load_lock)


def test_rollback_of_nothing_published(any_redis):
    with pytest.raises(RollbackError, match="nothing is published yet"):
        rollback(any_redis, KEYS)


def test_rollback_takes_the_load_lock(any_redis):
    v1, v2 = publish_rows(any_redis, V1), publish_rows(any_redis, V2)
    any_redis.set(KEYS.load_lock, "a-load", px=5000)
    with pytest.raises(LoadRunning):
        rollback(any_redis, KEYS)
    assert current_version(any_redis, KEYS) == v2
    any_redis.delete(KEYS.load_lock)
    with LoadLock(any_redis, KEYS) as lock:
        any_redis.set(KEYS.load_lock, "another-load")  # ours expired; a load took it
        with pytest.raises(RollbackError, match="lost the load lock"):
            rollback(any_redis, KEYS, v1, lock)
    assert current_version(any_redis, KEYS) == v2


def test_a_load_after_a_rollback_keeps_the_newest_four_by_load_order(any_redis):
    vers = [publish_rows(any_redis, rows) for rows in (V1, V2, V3, V1)]
    rollback(any_redis, KEYS, vers[0])
    v5 = publish_rows(any_redis, V2)
    assert kept_versions(any_redis, KEYS) == (v5, [*vers[1:], v5])
    assert keys_of(any_redis, vers[0]) == []
    assert rollback(any_redis, KEYS) == (v5, vers[3])


def test_cleanup_never_deletes_the_current_version_and_a_rollback_never_picks_a_deleted_one(any_redis,
                                                                                            monkeypatch):
    """The two race each other only if a load lost its lock: each step checks in Redis."""
    v1, v2 = publish_rows(any_redis, V1), publish_rows(any_redis, V2)
    publish_mod._delete_version(any_redis, KEYS, v2)  # current
    assert keys_of(any_redis, v2) and kept_versions(any_redis, KEYS) == (v2, [v1, v2])
    real_kept = publish_mod.kept_versions

    def then(step):
        def kept_then_step(r, keys):
            found = real_kept(r, keys)
            step()  # between the rollback's choice and its switch
            return found
        return kept_then_step

    monkeypatch.setattr(publish_mod, "kept_versions", then(lambda: any_redis.zrem(KEYS.history, v1)))
    with pytest.raises(RollbackError, match=f"version {v1} is no longer kept"):
        rollback(any_redis, KEYS, v1)
    any_redis.zadd(KEYS.history, {v1: 1})
    monkeypatch.setattr(publish_mod, "kept_versions", then(lambda: any_redis.delete(KEYS.selections(v1))))
    with pytest.raises(RollbackError, match="its selections are missing"):
        rollback(any_redis, KEYS, v1)
    assert current_version(any_redis, KEYS) == v2


def test_a_current_version_published_before_history_existed_is_kept(any_redis):
    old = publish_rows(any_redis, V1)
    any_redis.delete(KEYS.history)  # as a load of the code before versions were kept left it
    assert kept_versions(any_redis, KEYS) == (old, [old])
    new = publish_rows(any_redis, V2)
    assert kept_versions(any_redis, KEYS) == (new, [old, new])
    assert rollback(any_redis, KEYS) == (new, old)


def test_the_server_follows_a_rollback(server_redis):
    """/readyz, X-Banners-Version and the banners drawn: all the rolled-back version's."""
    r = server_redis[0]
    v1, v2 = publish_rows(r, V1), publish_rows(r, V2)
    client, store = make_client(server_redis)

    def served(n=80):  # every banner of 5 shows in 80 no-repeat draws but with p ~ 1e-9
        answers = [client.simulate_get("/campaigns/7", headers={"Accept": "application/json"}) for _ in range(n)]
        assert all(a.status_code == 200 for a in answers)
        return {a.headers["X-Banners-Version"] for a in answers}, {a.json["banner_id"] for a in answers}

    assert client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN).json["version"] == v2
    assert served() == ({v2}, {7001, 7002, 7003})
    rollback(r, KEYS)
    assert served() == ({v1}, {101, 200, 300, 400, 500})
    assert store.version == v1
    ready = client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN)
    assert ready.status_code == 200 and ready.json["version"] == v1
    rollback(r, KEYS, v2)
    assert served() == ({v2}, {7001, 7002, 7003})
    assert client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN).json["version"] == v2


def test_selection_changes_per_quarter_and_campaign():
    old = json.loads(json.dumps([  # as `show --json` gives them: revenue 2 and 2.5 alike
        {"quarter": 1, "campaign_id": 7, "banners": [{"banner_id": 1, "revenue": 2}, {"banner_id": 2, "revenue": 2.5}]},
        {"quarter": 1, "campaign_id": 8, "banners": [{"banner_id": 3, "revenue": 0.0}]},
        {"quarter": 2, "campaign_id": 7, "banners": [{"banner_id": 3, "revenue": 1.0}]},
        {"quarter": 3, "campaign_id": 5, "banners": [{"banner_id": 2**63 - 1, "revenue": 1.0}]},
    ]))
    new = selections([(1, 7, [5, 1, 4]), (1, 9, [3]), (2, 7, [3]), (3, 5, [2**63 - 1])])
    assert selection_changes(old, new).to_dicts() == [
        {"quarter": 1, "campaign_id": 7, "change": "changed", "banners_added": [4, 5], "banners_removed": [2]},
        {"quarter": 1, "campaign_id": 8, "change": "removed", "banners_added": [], "banners_removed": [3]},
        {"quarter": 1, "campaign_id": 9, "change": "added", "banners_added": [3], "banners_removed": []},
    ]
    assert selection_changes(old, new.filter(new["quarter"] != 1))["change"].to_list() == ["removed"] * 2
    assert selection_changes([], new).height == 4
    assert selection_changes(old, selections([])).height == 4


def test_status_keeps_the_loaded_file_beside_its_byte_identical_copy(real_redis, tmp_path):
    """A later copy of a loaded file (rejected as duplicate_file) must not replace the
    loaded one in the version's file list: they share a sha256 (found in a trial)."""
    from banner_server.layout.catalog import read_status
    from loader.pipeline import compute
    from loader.publish import publish
    from tests.test_loader import CLICKS, IMPS, write

    write(tmp_path, "1/impressions_1.csv", IMPS + "100,7\n101,7\n")
    write(tmp_path, "1/clicks_1.csv", CLICKS + "1,100,7\n")
    write(tmp_path, "1/clicks_1_copy.csv", CLICKS + "1,100,7\n")
    publish(real_redis, KEYS, compute(tmp_path, seed=1), {"seed": 1})
    files = {f["path"]: f for f in read_status(real_redis, KEYS)["files"]}
    assert set(files) == {"1/impressions_1.csv", "1/clicks_1.csv", "1/clicks_1_copy.csv"}
    assert files["1/clicks_1.csv"]["accepted"] == 1 and files["1/clicks_1_copy.csv"]["file_rejected"]
    assert files["1/clicks_1.csv"]["sha256"] == files["1/clicks_1_copy.csv"]["sha256"]
