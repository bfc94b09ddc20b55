"""The HTTP side's package files: what the code reads at import ships in the wheel."""

import configparser
from pathlib import Path

import fakeredis
import falcon.testing

from banner_server.config import Settings
from banner_server.layout.keys import Keys
from banner_server.web import banners
from banner_server.web.app import create_app
from banner_server.web.services import Services
from banner_server.web.store import SelectionStore

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "banner_server" / "web"


def test_every_file_of_the_web_package_that_is_not_python_is_package_data():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    shipped = setup["options.package_data"]["banner_server.web"].split()
    data = sorted(p.name for p in WEB.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc"))
    assert data == ["embed.js"] and all(name in shipped for name in data)


def test_embed_js_is_served_as_the_package_file_reads():
    store = SelectionStore(fakeredis.FakeRedis(), Keys())
    client = falcon.testing.TestClient(create_app(Settings(), Services(store, lambda: 1)))
    res = client.simulate_get("/embed.js")
    assert res.status_code == 200 and res.content == (WEB / "embed.js").read_bytes() == banners.EMBED_JS.encode()
