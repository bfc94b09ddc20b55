"""The dashboard's reading of recorded events: a failed read is retried a REFRESH later,
not on every page (each page paid the timeouts again on the worker's event loop), and
the sums are made once per read, not per page."""

import pytest
import datetime as dt

import redis

from banner_server.web.business import REFRESH, RecordedEvents


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




@pytest.mark.render_budget
def test_rendering_takes_at_most_its_share_of_the_worker_cached_pages_always_answer(any_redis):
    """Each uncached page 'takes' 1 s of a ticking clock: the next uncached one waits
    1 / RENDER_SHARE s (503 with Retry-After until then); a cached page is answered."""
    import falcon.testing

    from banner_server.config import Settings
    from banner_server.web import dashboard
    from banner_server.web.app import create_app
    from banner_server.web.auth import AdminAuth
    from banner_server.web.services import Services
    from banner_server.web.store import SelectionStore
    from tests.serving import ADMIN, ADMIN_TOKEN, KEYS, STANDARD, publish_rows

    publish_rows(any_redis, STANDARD)
    ticks = Clock()

    class Ticking(dashboard.DashboardResource):
        def __init__(self, services):
            super().__init__(services, monotonic=ticks)

        def list_data(self, *a):
            ticks.t += 1.0  # the rendering's time
            return super().list_data(*a)

    original = dashboard.DashboardResource
    dashboard.DashboardResource = Ticking
    try:
        import banner_server.web.app as app_module
        app_module.DashboardResource = Ticking
        store = SelectionStore(any_redis, KEYS)
        client = falcon.testing.TestClient(create_app(Settings(), Services(store, lambda: 1,
                                                                           admin=AdminAuth(ADMIN_TOKEN))))
        assert client.simulate_get("/dashboard", query_string="page=1", headers=ADMIN).status_code == 200
        busy = client.simulate_get("/dashboard", query_string="quarter=2", headers=ADMIN)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert client.simulate_get("/dashboard", query_string="page=1", headers=ADMIN).status_code == 200  # cached
        ticks.t += 1 / dashboard.RENDER_SHARE
        assert client.simulate_get("/dashboard", query_string="quarter=2", headers=ADMIN).status_code == 200
    finally:
        dashboard.DashboardResource = original
        app_module.DashboardResource = original
