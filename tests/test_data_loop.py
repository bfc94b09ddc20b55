"""The data loop end to end on a real server: serve banners to several campaigns,
follow click URLs, post conversions (and a duplicate, a conflict, an unknown click, a
bad token), export the hour, load the export, and check `banners show --json` against
a plain computation from what this test itself did.

The server runs under libfaketime (Debian's `faketime`) from 2026-11-28 10:05 UTC, so
every event falls in quarter 1 of hour 10; the export's clock is injected.
"""

import datetime as dt
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from banner_server import cli
from banner_server.cli import export as cli_export
from banner_server.clients.embedded import free_port
from loader.pipeline import compute
from loader.publish import publish
from tests.reference import reference_selection
from tests.serving import KEYS
from tests.test_loader import write

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime is not installed "
                                 "(apt-get install faketime; .ci/run installs it)")]
TOKEN = "postback-token-0123456789"
LANDING = {7: "https://shop.example/seven?ref=b", 9: "https://nine.example/"}


def publish_base(redis_client, tmp_path):
    """Something to serve: campaigns 7 and 9, six banners each, with landing pages."""
    data = tmp_path / "base"
    write(data, "1/impressions_1.csv", "banner_id,campaign_id\n"
          + "".join(f"{b},7\n" for b in range(700, 706)) + "".join(f"{b},9\n" for b in range(900, 906)))
    write(data, "1/clicks_1.csv", "click_id,banner_id,campaign_id\n"
          + "".join(f"{i},{700 + i % 6},7\n{100 + i},{900 + i % 6},9\n" for i in range(12)))
    for q in (2, 3, 4):
        write(data, f"{q}/impressions_{q}.csv", f"banner_id,campaign_id\n70{q},7\n90{q},9\n")
    write(data, "campaigns.csv", "campaign_id,name,landing_url\n7,Seven,%s\n9,Nine,%s\n" % (LANDING[7], LANDING[9]))
    return publish(redis_client, KEYS, compute(data, seed=5), {"seed": 5})


@pytest.fixture
def server(redis_proc, real_redis, tmp_path):
    publish_base(real_redis, tmp_path)
    port = free_port()
    env = {**os.environ, "BANNERS_STATE_DIR": str(tmp_path / "state"), "BANNERS_REDIS_TIMEOUT": "0.5",
           "BANNERS_POSTBACK_TOKEN": TOKEN, "BANNERS_TZ": "UTC",
           # traffic quality on (the default), but the loop clicks right after each impression
           "BANNERS_MIN_CLICK_DELAY": "0"}
    # A relative offset (libfaketime's "start at" mode breaks gunicorn's sleeps): the
    # server's clock reads 2026-11-28 10:05:00 UTC when it starts.
    offset = int(dt.datetime(2026, 11, 28, 10, 5, tzinfo=dt.timezone.utc).timestamp() - time.time())
    proc = subprocess.Popen(
        ["faketime", "-f", f"{offset:+d}s", sys.executable, "-m", "cli", "serve", "--bind",
         f"127.0.0.1:{port}", "--workers", "2", "--redis-url", redis_proc.url],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/readyz")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("server did not start: " + proc.stdout.read().decode()[-2000:])
    yield port
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(15)


BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


def request(port, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        return res.status, res.headers, res.read()
    finally:
        conn.close()


def post(port, payload, token=TOKEN):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return request(port, "POST", "/conversions", headers, json.dumps(payload).encode())[0]


def test_serve_click_convert_export_load(server, real_redis, tmp_path, monkeypatch):
    port = server
    impressions, clicks, conversions = Counter(), [], []
    click_urls = []
    for i in range(240):
        campaign = (7, 9)[i % 2]
        status, _, body = request(port, "GET", f"/campaigns/{campaign}?format=json",
                                  {"Cookie": f"visitor_id={i % 40:022d}", "User-Agent": BROWSER})
        assert status == 200
        answer = json.loads(body)
        assert answer["name"] == {7: "Seven", 9: "Nine"}[campaign]
        impressions[campaign, answer["banner_id"]] += 1
        if i % 5 == 0:
            click_urls.append((campaign, answer["banner_id"], answer["click_url"], i % 40))
    for campaign, banner, url, visitor in click_urls:
        # the visitor it was shown to (valid traffic: a browser, its own click URL)
        status, headers, _ = request(port, "GET", url, {"Cookie": f"visitor_id={visitor:022d}", "User-Agent": BROWSER})
        assert status == 302
        location = urlsplit(headers["Location"])
        assert headers["Location"].startswith(LANDING[campaign].split("?")[0])
        click_id = int(parse_qs(location.query)["click_id"][0])
        # Two answers of one banner to one visitor within a second carry one click URL,
        # and a click URL records one click (issue 19): its second use is the same click.
        if all(click_id != seen for seen, _, _ in clicks):
            clicks.append((click_id, banner, campaign))
    # conversions for every third click, revenue by hand
    for n, (click_id, banner, campaign) in enumerate(clicks[::3]):
        revenue = [2.5, 7, 0.75, 12][n % 4]
        assert post(port, {"click_id": click_id, "conversion_id": 5000 + n, "revenue": revenue}) == 201
        conversions.append((5000 + n, click_id, revenue))
    first = conversions[0]
    assert post(port, {"click_id": first[1], "conversion_id": first[0], "revenue": first[2]}) == 200  # again
    assert post(port, {"click_id": first[1], "conversion_id": first[0], "revenue": first[2] + 1}) == 409
    assert post(port, {"click_id": 10**12, "conversion_id": 9999, "revenue": 1}) == 404  # unknown click
    assert post(port, {"click_id": first[1], "conversion_id": 9998, "revenue": 1}, token="wrong" * 5) == 401
    assert post(port, {"click_id": first[1], "conversion_id": 9997, "revenue": 1}, token=None) == 401
    assert request(port, "GET", "/click/forged-token-AAAA")[0] == 400

    # export hour 10 (the server's fake clock) an hour later, then load what it wrote
    monkeypatch.setattr(cli_export, "_clock", lambda tz: (lambda: dt.datetime(2026, 11, 28, 11, 5, tzinfo=dt.timezone.utc)))
    out = tmp_path / "export"
    res = CliRunner().invoke(cli.main, ["export", str(out), "--hour", "2026-11-28T10", "--redis-url",
                                        f"unix://{real_redis.connection_pool.connection_kwargs['path']}"])
    assert res.exit_code == 0, res.output
    shown = loaded_selections(out, tmp_path)
    print(f"loop: {sum(impressions.values())} impressions, {len(clicks)} clicks, {len(conversions)} conversions; {res.output.strip()}")

    # what the test itself did, through a plain statement of the rules (SPEC §2)
    want = reference_selection(
        [(1, c, b) for (c, b) in impressions],
        [(1, click_id, b, c) for click_id, b, c in clicks],
        [(1, conv, click_id, rev) for conv, click_id, rev in conversions])
    assert set(shown) == {(1, 7), (1, 9)}
    for key, (scenario, x, fixed, n_random) in want.items():
        got = shown[key]
        assert (got["scenario"], got["x"]) == (scenario, x), key
        ids = [b["banner_id"] for b in got["banners"]]
        assert ids[:len(fixed)] == fixed and len(ids) == len(fixed) + n_random, (key, ids, fixed)
        revenue = {b: 0.0 for b in ids}
        for conv, click_id, rev in conversions:
            c_b = next((b, c) for cid, b, c in clicks if cid == click_id)
            if (1, c_b[1]) == key:
                revenue[c_b[0]] = revenue.get(c_b[0], 0.0) + rev
        assert all(abs(b["revenue"] - revenue.get(b["banner_id"], 0.0)) < 1e-9 for b in got["banners"])


def loaded_selections(out: Path, tmp_path: Path) -> dict:
    """`banners load OUT` into a fresh Redis of its own, then `banners show --json`."""
    from tests.harness import RedisProcess

    proc = RedisProcess().start()
    try:
        runner = CliRunner()
        res = runner.invoke(cli.main, ["load", str(out), "--seed", "1", "--redis-url", proc.url,
                                       "--state-dir", str(tmp_path / "load-state")])
        assert res.exit_code in (0, 3), res.output  # 3: quarters 2-4 had no traffic in that hour
        shown = json.loads(runner.invoke(cli.main, ["show", "--json", "--redis-url", proc.url]).output)
    finally:
        proc.close()
    return {(r["quarter"], r["campaign_id"]): r for r in shown}
