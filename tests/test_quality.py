"""Traffic quality: the classifier's reasons, their precedence, its cache and settings.

Pure and fast: no Redis, no clock (the caller's `now` is passed in).  The module is
loaded from its file: banner_server/web/ becomes a package when the web split lands.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from ua_samples import BOTS, BROWSERS  # noqa: E402

from banner_server import config  # noqa: E402


def _load_quality():
    try:
        from banner_server.web import quality  # after the web split
        return quality
    except ImportError:
        # banner_server.web is not a package yet: load the file as banner_server.web.quality
        # so its relative import of config resolves.
        import types

        import banner_server

        pkg = sys.modules.setdefault("banner_server.web", types.ModuleType("banner_server.web"))
        pkg.__path__ = [str(ROOT / "banner_server" / "web")]
        banner_server.web = pkg
        spec = importlib.util.spec_from_file_location("banner_server.web.quality",
                                                      ROOT / "banner_server" / "web" / "quality.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


q = _load_quality()

CHROME = BROWSERS[0]
NOW = 1_800_000_000.0


def env(user_agent=CHROME, **headers):
    e = {"HTTP_" + k.upper(): v for k, v in headers.items()}
    if user_agent is not None:
        e["HTTP_USER_AGENT"] = user_agent
    return e


def valid_click(c, **kw):
    args = dict(served_at=NOW - 5, now=NOW, impression_seen=True, clicks_this_minute=1)
    args.update(kw)
    return c.click("GET", env(), "198.51.100.7", **args)


# -- impressions ------------------------------------------------------------------------

def test_a_browser_impression_is_valid():
    assert q.Classifier().impression("GET", env(), "198.51.100.7") is None


@pytest.mark.parametrize("user_agent", BROWSERS)
def test_real_browsers_are_valid(user_agent):
    assert q.Classifier().impression("GET", env(user_agent)) is None


@pytest.mark.parametrize("user_agent", [ua for ua in BOTS if "PhantomJS" not in ua])
def test_known_bots_are_bots(user_agent):
    # PhantomJS (unmaintained since 2018) is the list's one miss: bench/results/ua_compare.md
    assert q.Classifier().impression("GET", env(user_agent)) == q.BOT


def test_head_is_invalid():
    assert q.Classifier().impression("HEAD", env()) == q.HEAD


@pytest.mark.parametrize("name, value", [
    ("sec_purpose", "prefetch"), ("sec_purpose", "prefetch;prerender"), ("purpose", "prefetch"),
    ("x_purpose", "preview"), ("x_moz", "prefetch"), ("sec_purpose", "Prefetch"),
])
def test_prefetch_headers(name, value):
    assert q.Classifier().impression("GET", env(**{name: value})) == q.PREFETCH


def test_other_purpose_values_are_not_prefetch():
    assert q.Classifier().impression("GET", env(sec_purpose="", x_moz="something")) is None


@pytest.mark.parametrize("user_agent", [None, "", "   "])
def test_no_user_agent(user_agent):
    assert q.Classifier().impression("GET", env(user_agent)) == q.NO_USER_AGENT


def test_operator_user_agents_any_case():
    c = q.Classifier(user_agents=("our-monitor", "Acme Checker"))
    assert c.impression("GET", env(CHROME + " Our-Monitor/2.0")) == q.OPERATOR_UA
    assert c.impression("GET", env("acme checker 1.0")) == q.OPERATOR_UA
    assert c.impression("GET", env()) is None


def test_operator_networks():
    c = q.Classifier(networks=(ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("2001:db8::/32")))
    assert c.impression("GET", env(), "10.1.2.3") == q.OPERATOR_NETWORK
    assert c.impression("GET", env(), "::ffff:10.1.2.3") == q.OPERATOR_NETWORK
    assert c.impression("GET", env(), "2001:db8::5") == q.OPERATOR_NETWORK
    assert c.impression("GET", env(), "10.2.0.1") is None
    assert c.impression("GET", env(), "not an address") is None
    assert c.impression("GET", env(), None) is None


def test_impression_precedence():
    c = q.Classifier(user_agents=("googlebot",), networks=(ipaddress.ip_network("10.0.0.0/8"),))
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    assert c.impression("HEAD", env(None, purpose="prefetch"), "10.0.0.1") == q.HEAD
    assert c.impression("GET", env(None, purpose="prefetch"), "10.0.0.1") == q.PREFETCH
    assert c.impression("GET", env(None), "10.0.0.1") == q.NO_USER_AGENT
    assert c.impression("GET", env(bot), "10.0.0.1") == q.OPERATOR_NETWORK
    assert c.impression("GET", env(bot), "192.0.2.1") == q.OPERATOR_UA
    assert q.Classifier().impression("GET", env(bot), "192.0.2.1") == q.BOT


def test_off_everything_counts():
    c = q.Classifier(enabled=False)
    assert c.impression("HEAD", env(None)) is None
    assert c.click("HEAD", env(None), served_at=None, now=NOW, impression_seen=False, replay=True) is None


# -- clicks -------------------------------------------------------------------------------

def test_a_click_after_its_impression_is_valid():
    assert valid_click(q.Classifier()) is None


def test_click_reasons():
    c = q.Classifier(min_click_delay=1.0, max_clicks_per_minute=10)
    assert valid_click(c, impression_seen=False) == q.NO_IMPRESSION
    assert valid_click(c, served_at=None) == q.NO_IMPRESSION
    assert valid_click(c, served_at=NOW + 10) == q.NO_IMPRESSION  # served in the future
    assert valid_click(c, served_at=NOW - 24 * 3600 - 1) == q.NO_IMPRESSION  # past the token's life
    assert valid_click(c, served_at=NOW - 0.5) == q.TOO_FAST
    assert valid_click(c, served_at=NOW - 1) is None
    assert valid_click(c, clicks_this_minute=10) is None
    assert valid_click(c, clicks_this_minute=11) == q.CLICK_RATE
    assert valid_click(c, clicks_this_minute=None) is None  # not asked
    assert valid_click(c, replay=True) == q.REPLAY
    assert valid_click(c, other_visitor=True) == q.OTHER_VISITOR


def test_click_limits_off():
    c = q.Classifier(min_click_delay=0, max_clicks_per_minute=0)
    assert valid_click(c, served_at=NOW, clicks_this_minute=10_000) is None


def test_click_precedence():
    c = q.Classifier()
    worst = dict(served_at=NOW, impression_seen=False, clicks_this_minute=99, replay=True, other_visitor=True)
    assert c.click("HEAD", env(), **worst, now=NOW) == q.HEAD
    assert c.click("GET", env(BOTS[0]), **worst, now=NOW) == q.BOT
    assert c.click("GET", env(), **worst, now=NOW) == q.REPLAY
    worst["replay"] = False
    assert c.click("GET", env(), **worst, now=NOW) == q.OTHER_VISITOR
    worst["other_visitor"] = False
    assert c.click("GET", env(), **worst, now=NOW) == q.NO_IMPRESSION
    worst["impression_seen"] = True
    assert c.click("GET", env(), **worst, now=NOW) == q.TOO_FAST
    worst["served_at"] = NOW - 2
    assert c.click("GET", env(), **worst, now=NOW) == q.CLICK_RATE


def test_every_reason_is_listed_once():
    assert len(set(q.CLICK_REASONS)) == len(q.CLICK_REASONS) == 11
    assert set(q.IMPRESSION_REASONS) < set(q.CLICK_REASONS)


def test_click_rate_key_is_in_the_visitors_group_per_minute():
    assert q.click_rate_key("banners:", "{g3.60}", "a:abc", 120.0) == "banners:{g3.60}:crate:a:abc:2"
    assert q.click_rate_key("banners:", "{g3.60}", "a:abc", 179.9) == q.click_rate_key("banners:", "{g3.60}", "a:abc", 120)
    assert q.CLICK_RATE_TTL > q.CLICK_RATE_WINDOW


# -- the user-agent cache -------------------------------------------------------------------

def test_verdicts_are_cached_and_the_cache_is_bounded(monkeypatch):
    calls = []

    def counting(ua):
        calls.append(ua)
        return "bot" in ua

    monkeypatch.setattr(q, "_is_crawler", counting)
    c = q.Classifier(cache_size=4)
    for _ in range(3):
        assert c.impression("GET", env("a bot")) == q.BOT
    assert calls == ["a bot"]  # asked the list once
    for i in range(10):
        c.impression("GET", env(f"browser {i}"))
    info = c.user_agent_verdict.cache_info()
    assert info.currsize == 4 and info.maxsize == 4
    c.impression("GET", env("a bot"))  # evicted: asked again
    assert calls.count("a bot") == 2


def test_each_classifier_has_its_own_verdicts():
    ua = CHROME + " acme"
    assert q.Classifier().impression("GET", env(ua)) is None
    assert q.Classifier(user_agents=("acme",)).impression("GET", env(ua)) == q.OPERATOR_UA


# -- settings ---------------------------------------------------------------------------------

def test_from_env_defaults():
    c = q.Classifier.from_env({})
    assert c.enabled is True and c.user_agents == () and c.networks == ()
    assert c.min_click_delay == 1.0 and c.max_clicks_per_minute == 10


def test_from_env_reads_the_variables():
    c = q.Classifier.from_env({
        "BANNERS_CLASSIFY": "false",
        "BANNERS_BOT_USER_AGENTS": "Acme Monitor/1, , our-probe",
        "BANNERS_BOT_NETWORKS": "10.0.0.0/8, 2001:db8::/32",
        "BANNERS_MIN_CLICK_DELAY": "0",
        "BANNERS_MAX_CLICKS_PER_MINUTE": "0",
    })
    assert c.enabled is False
    assert c.user_agents == ("acme monitor/1", "our-probe")
    assert [str(n) for n in c.networks] == ["10.0.0.0/8", "2001:db8::/32"]
    assert c.min_click_delay == 0 and c.max_clicks_per_minute == 0


@pytest.mark.parametrize("name, value", [
    ("BANNERS_CLASSIFY", "maybe"), ("BANNERS_BOT_USER_AGENTS", " , "), ("BANNERS_BOT_NETWORKS", "10.0.0.0/99"),
    ("BANNERS_MIN_CLICK_DELAY", "-1"), ("BANNERS_MIN_CLICK_DELAY", "soon"), ("BANNERS_MAX_CLICKS_PER_MINUTE", "-2"),
])
def test_bad_settings_name_the_variable(name, value):
    with pytest.raises(config.SettingError, match=name):
        q.Classifier.from_env({name: value})
