"""campaigns.csv: names and landing pages, validated like the data, shown by the server."""

import json

from loader.pipeline import compute
from tests.serving import KEYS, make_client
from loader.publish import publish
from tests.test_loader import CLICKS, CONVS, IMPS, write

CAMPAIGNS = (
    "campaign_id,name,landing_url\n"
    "1,\"Shoes, red\",https://shop.example/shoes?ref=banner\n"
    "2,Old name,http://two.example/\n"
    "3,Bad link,javascript:alert(1)\n"
    "4,No scheme,shop.example\n"
    "x,Bad id,https://x.example/\n"
    "5,Too,many,fields\n"
    "9223372036854775808,Too big,https://big.example/\n"
)


def folder(tmp_path, campaigns=CAMPAIGNS, extra=None):
    files = {"1/impressions_1.csv": IMPS + "100,1\n101,1\n200,2\n", "1/clicks_1.csv": CLICKS + "1,100,1\n",
             "1/conversions_1.csv": CONVS + "1,1,2.5\n", "campaigns.csv": campaigns}
    files.update(extra or {})
    for rel, text in files.items():
        write(tmp_path, rel, text)
    return tmp_path


def test_rows_are_checked_and_the_last_valid_one_wins(tmp_path):
    res = compute(folder(tmp_path, extra={"zz/campaigns.csv": "landing_url,campaign_id,name\n"
                                                              "http://two.example/new,2,New name\n"}), seed=1)
    got = {c: (n, u) for c, n, u, *_ in res.campaigns.rows()}
    assert got == {1: ("Shoes, red", "https://shop.example/shoes?ref=banner"),
                   2: ("New name", "http://two.example/new")}
    bad = res.rejects.filter(res.rejects["file"] == "campaigns.csv")
    assert sorted(bad["line"].to_list()) == [4, 5, 6, 7, 8] and set(bad["reason"]) == {"invalid"}
    assert any("javascript" in d for d in bad["detail"].to_list())
    assert res.invalid == 5  # invalid input: load exits 3


def test_names_and_landing_pages_reach_the_server(any_redis, tmp_path):
    res = compute(folder(tmp_path), seed=1)
    ver = publish(any_redis, KEYS, res, {"seed": 1})
    assert json.loads(any_redis.hget(KEYS.campaign_info(ver), "1")) == ["Shoes, red",
                                                                        "https://shop.example/shoes?ref=banner"]
    client, store = make_client(any_redis, pinned=1)
    campaign = next(c for c in client.simulate_get("/", headers={"Accept": "application/json"}).json["campaigns"]
                    if c["campaign_id"] == 1)
    assert campaign["name"] == "Shoes, red"
    body = client.simulate_get("/campaigns/1", headers={"Accept": "application/json"}).json
    assert body["name"] == "Shoes, red" and store.landing(1)[1].startswith("https://shop.example/")
    assert "Shoes, red" in client.simulate_get("/campaigns/1").text
