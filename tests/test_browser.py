"""Pages in a real browser: headless Chromium (Debian's package), skipped without it."""

import datetime as dt
import struct
from pathlib import Path

import pytest

from tests.harness import RedisProcess
from tests.serving import ADMIN_TOKEN, STANDARD, publish_rows
from tests.test_e2e import Server

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _chromium():
    import sys

    sys.path.insert(0, str(ROOT / "docs"))
    import screenshot

    if screenshot.chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return screenshot


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


from tests.test_reliability import live  # noqa: E402,F401  (the real server over the standard data)


@pytest.mark.parametrize("width, height", [(1100, 900), (390, 844)])  # a desktop and a phone
def test_dashboard_renders_in_chromium(live, tmp_path, width, height):
    chrome = _chromium()
    for _ in range(10):
        live.get("/campaigns/7")
    # HTTP Basic in the URL: how a person's browser sends the operators' token.
    base = f"http://ops:{ADMIN_TOKEN}@127.0.0.1:{live.port}"
    out = chrome.screenshot(f"{base}/dashboard/campaigns/7", tmp_path / "d.png", width, height)
    assert png_size(out) == (width, height)
    dom = chrome.dump_dom(f"{base}/dashboard/campaigns/7", width, height)
    assert dom.count("<svg") >= 3 and '<img src="/banners/101.svg"' in dom and "Quarter 1 — now" in dom
    assert "Impressions per hour" in dom and "Legend" in dom
    listing = chrome.dump_dom(f"{base}/dashboard", width, height)
    assert '<a href="/dashboard/campaigns/7">' in listing and "Quarter 1, all campaigns" in listing
    anonymous = chrome.dump_dom(f"http://127.0.0.1:{live.port}/dashboard", width, height)
    assert "all campaigns" not in anonymous and "Impressions" not in anonymous  # 401: nothing shown


@pytest.fixture
def embedding(tmp_path):
    """A banner server with landing pages and a named CORS origin, and another origin
    (another port) serving a publisher's page and the landing page."""
    import http.server
    import threading

    from banner_server.clients.embedded import free_port
    from loader.pipeline import compute
    from loader.publish import publish
    from tests.serving import KEYS
    from tests.test_loader import write

    site_port = free_port()
    site = f"http://127.0.0.1:{site_port}"
    data = tmp_path / "data"
    for q in (1, 2, 3, 4):
        write(data, f"{q}/impressions_{q}.csv", "banner_id,campaign_id\n"
              + "".join(f"{b},7\n" for b in range(700, 703)) + "".join(f"{b},9\n" for b in range(900, 903)))
    write(data, "campaigns.csv", f"campaign_id,name,landing_url\n7,Seven,{site}/landing?from=7\n9,Nine,{site}/landing\n")
    proc = RedisProcess().start()
    publish(proc.client(), KEYS, compute(data, seed=1), {"seed": 1})
    server = Server(proc.url, tmp_path / "state", "--quarter", "1", "--cors-origin", site)
    banners = f"http://127.0.0.1:{server.port}"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(
        "<!doctype html><html><body><h1>A publisher's page</h1>"
        f'<p><script src="{banners}/embed.js" data-campaign="7" async></script></p>'
        f'<p><script src="{banners}/embed.js" data-campaign="9" async></script></p>'
        f'<iframe src="{banners}/campaigns/7/embed" width="300" height="250" style="border:0"></iframe>'
        "</body></html>")
    (tmp_path / "site" / "landing").write_text("<!doctype html><title>landing</title><p>Welcome</p>")
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "site"), **kw)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", site_port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield site, banners, proc
    finally:
        httpd.shutdown()
        server.stop()
        proc.close()


def test_two_script_placements_and_an_iframe_render_and_click_through(embedding, tmp_path):
    import http.client
    import re
    from urllib.parse import parse_qs, urlsplit

    from tests.serving import KEYS

    chrome = _chromium()
    site, banners, proc = embedding
    shot = chrome.screenshot(f"{site}/index.html", tmp_path / "page.png", 1000, 900)
    assert png_size(shot) == (1000, 900)
    dom = chrome.dump_dom(f"{site}/index.html", 1000, 900, extra=["--virtual-time-budget=5000"])
    links = re.findall(r'<a href="(' + re.escape(banners) + r'/click/[^"]+)"><img src="' + re.escape(banners)
                       + r'/banners/(\d+)\.svg"', dom)
    assert len(links) == 2, dom  # both script placements replaced themselves with a linked banner
    assert {int(b) // 100 for _, b in links} == {7, 9}
    assert "<iframe" in dom and "data-campaign" not in dom.split("<iframe")[0].split("<h1>")[1]
    # follow a banner's link as a click would: recorded, then sent on to the landing page
    href = next(h for h, b in links if b.startswith("7"))
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(banners).port, timeout=5)
    conn.request("GET", urlsplit(href).path)
    res = conn.getresponse()
    assert res.status == 302
    target = urlsplit(res.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{site}/landing"
    query = parse_qs(target.query)
    assert query["from"] == ["7"]
    click_id = int(query["click_id"][0])
    client = proc.client()
    groups = int(client.get(KEYS.groups_key) or 1)
    from banner_server.layout.events import EventStore

    local = dt.datetime.now().astimezone().tzinfo  # the server runs in the system zone
    assert EventStore(client, KEYS.with_groups(groups)).click(click_id, tz=local) is not None  # recorded
