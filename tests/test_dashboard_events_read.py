"""The dashboard's reading of recorded events: a failed read is retried a REFRESH later,
not on every page (each page paid the timeouts again on the worker's event loop), and
the sums are made once per read, not per page."""

import datetime as dt

import redis

from banner_server.web.dashboard import REFRESH, RecordedEvents


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Failing:
    def __init__(self):
        self.reads = 0

    def read_hour(self, hour):
        self.reads += 1
        raise redis.TimeoutError("Timeout reading from socket")


def test_a_failed_read_is_retried_a_refresh_later_not_per_page():
    events, mono = Failing(), Clock()
    recorded = RecordedEvents(events, lambda: dt.datetime(2026, 11, 28, 10, 5, tzinfo=dt.timezone.utc), mono)
    for _ in range(5):
        business = recorded()
        assert recorded.error is not None and business.summaries == {}
    assert events.reads == 1
    mono.t += REFRESH
    recorded()
    assert events.reads == 2


