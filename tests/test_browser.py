"""Pages in a real browser: headless Chromium (Debian's package), skipped without it."""

import struct
from pathlib import Path

import pytest

from tests.conftest import RedisProcess
from tests.serving import STANDARD, publish_rows
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


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    proc = RedisProcess().start()
    publish_rows(proc.client(), STANDARD)
    server = Server(proc.url, tmp_path_factory.mktemp("browser"), "--quarter", "1")
    yield server
    server.stop()
    proc.close()


@pytest.mark.parametrize("width, height", [(1100, 900), (390, 844)])  # a desktop and a phone
def test_dashboard_renders_in_chromium(live, tmp_path, width, height):
    chrome = _chromium()
    for _ in range(10):
        live.get("/campaigns/7")
    url = f"http://127.0.0.1:{live.port}/dashboard"
    out = chrome.screenshot(url, tmp_path / "d.png", width, height)
    assert png_size(out) == (width, height)
    dom = chrome.dump_dom(url, width, height)
    assert dom.count("<meter") >= 2 * 5 and '<img src="/banners/101.svg"' in dom and "Quarter 1 — now" in dom
