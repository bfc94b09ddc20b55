"""The request path's shortcuts give the bytes and answers the plain code gave."""

import banner_server.clients.fast as fast
from banner_server.clients.fast import _bulk, _bulk_cached


def test_cached_bulk_strings_are_the_plain_ones_and_bounded(monkeypatch):
    parts = ["a", b"b", 17, True, "\u00e9", "", 0, -3, 1, "banners:{g1}:vis:c:" + "x" * 22]
    assert _bulk_cached(parts) == _bulk(parts)
    assert _bulk_cached(parts) == _bulk(parts)  # now from the cache
    monkeypatch.setattr(fast, "_CACHED", 3)
    monkeypatch.setattr(fast, "_bulk_cache", {})
    for i in range(50):  # parts seen once (visitors' keys) never grow it past its bound
        assert _bulk_cached([f"k{i}", i]) == _bulk([f"k{i}", i])
        assert len(fast._bulk_cache) <= 3
