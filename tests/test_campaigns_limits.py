"""campaigns.csv limits of issue 18: URL length, userinfo, format characters, only
campaigns with data published; IPv6 hosts keep their brackets."""

from __future__ import annotations

import polars as pl
import pytest

from banner_server.web.tracking import with_click_id
from loader.campaigns import MAX_URL
from loader.pipeline import compute


def _folder(tmp_path, rows: list[str]):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "impressions_1.csv").write_text("banner_id,campaign_id\n100,1\n101,2\n")
    (tmp_path / "campaigns.csv").write_text("campaign_id,name,landing_url\n" + "".join(r + "\n" for r in rows))
    return compute(tmp_path, seed=1)


@pytest.mark.parametrize("row, detail", [
    (f"1,a,https://x.example/{'a' * (MAX_URL - 17)}", "longer than 2048"),
    ("1,a,https://good.example@evil.example/", "user name or password"),
    ("1,a,https://ü@[::1]:8080/", "user name or password"),
    ("1,a\u202egnp.exe,https://x.example/", "format characters"),
    ("1,a\u200bb,https://x.example/", "format characters"),
])
def test_bad_campaign_rows_are_invalid(tmp_path, row, detail):
    res = _folder(tmp_path, [row])
    bad = res.rejects.filter(pl.col("file") == "campaigns.csv")
    assert bad.height == 1 and detail in bad["detail"][0]
    assert res.campaigns.height == 0 and res.invalid == 1


def test_a_url_of_2048_characters_is_taken(tmp_path):
    url = f"https://x.example/{'a' * (MAX_URL - 18)}"
    assert len(url) == MAX_URL
    res = _folder(tmp_path, [f"1,a,{url}"])
    assert res.campaigns["landing_url"].to_list() == [url]


def test_only_campaigns_with_data_are_kept_the_others_counted(tmp_path):
    res = _folder(tmp_path, [f"{c},C{c},https://x.example/{c}" for c in range(1, 1001)])
    assert res.campaigns["campaign_id"].to_list() == [1, 2]
    assert res.campaigns_without_data == 998
    assert res.invalid == 0


def test_ipv6_host_keeps_its_brackets_with_a_click_id():
    assert with_click_id("https://ü@[::1]:8080/", 5) == "https://%C3%BC@[::1]:8080/?click_id=5"
    assert with_click_id("https://ü.example/", 5) == "https://xn--tda.example/?click_id=5"
