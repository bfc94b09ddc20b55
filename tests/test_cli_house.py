"""The CLI as a package over loader/run.py: the load's outcome as a value, one rule for
"nothing published", bounded dry-run changes, escaped file names, 0600 state files,
settings built from the variable registry."""

import dataclasses
import datetime as dt
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from banner_server import checks, config
from banner_server.cli import main
from banner_server.cli import load as cli_load
from banner_server.layout.keys import Keys
from banner_server.text import clean
from loader.rejects import RejectLog
from loader.run import DryRun, LoadOptions, NothingPublished, Published, Report, run
from tests.serving import KEYS
from tests.test_loader import CLICKS, IMPS, write

ROOT = Path(__file__).resolve().parent.parent
NASTY = "\x1b]0;title\x07\x1b[2J\nx.csv"  # retitles the terminal, clears it, forges a line


@pytest.fixture
def full(tmp_path):
    root = tmp_path / "data"
    for q in (1, 2, 3, 4):
        write(root, f"{q}/impressions_{q}.csv", IMPS + f"10{q},7\n")
    write(root, "1/clicks_1.csv", CLICKS + "1,101,7\n")
    return root


def invoke(redis_proc, *args):
    return CliRunner().invoke(main, [*args, "--redis-url", redis_proc.url], catch_exceptions=False)


def options(client, data, tmp_path, **kw):
    return LoadOptions(data, client, Keys(KEYS.prefix), "redis://:secret@127.0.0.1:1/0", tmp_path / "rej.jsonl",
                       **kw)


# -- loader/run.py: an outcome, never a print or an exit -----------------------------------

def test_run_returns_published_then_a_dry_run_then_nothing(any_redis, full, tmp_path):
    fixed = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.timezone.utc)
    seen = []

    class Seen(Report):
        def seed(self, seed, whose):
            seen.append(("seed", seed, whose))

        def computed(self, result):
            seen.append(("computed", result.selections.height))

    out = run(options(any_redis, full, tmp_path, seed=5, report=Seen(), now=lambda: fixed))
    assert isinstance(out, Published) and out.version and out.seed == 5 and not out.incomplete
    assert out.missing == [] and out.warnings == [] and out.reject_log == tmp_path / "rej.jsonl"
    assert seen == [("seed", 5, ""), ("computed", 4)]
    assert any_redis.hget(KEYS.meta(out.version), "loaded_at") in (b"2026-11-28T10:00:00+00:00",
                                                                    b'"2026-11-28T10:00:00+00:00"')
    assert not any_redis.exists(KEYS.load_lock)  # taken and released by run

    (full / "4" / "impressions_4.csv").unlink()
    dry = run(options(any_redis, full, tmp_path, dry_run=True))
    assert isinstance(dry, DryRun) and dry.seed == 5  # the current version's seed
    assert dry.incomplete and dry.missing[0].startswith("quarter 4 has no data")
    assert dry.changes.header == f"changes against version {out.version}:"
    assert "quarter 4: 0 campaign(s) added, 1 removed, 0 with other banners" in dry.changes.lines

    empty = tmp_path / "empty"
    empty.mkdir()
    none = run(options(any_redis, empty, tmp_path))
    assert isinstance(none, NothingPublished) and none.reason == "no_files"
    assert none.message == f"no *.csv files under {empty}: nothing published"
    write(full, "2/bad.csv", CLICKS + "x,1,1\n")
    strict = run(options(any_redis, full, tmp_path, strict=True))
    assert isinstance(strict, NothingPublished) and strict.reason == "strict"
    assert "secret" not in strict.message


def test_loader_never_imports_click_nor_ends_the_process():
    for path in sorted((ROOT / "loader").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"import click|sys\.exit|SystemExit|banner_server\.cli", text), path.name
    code = "import loader.run, sys; print('click' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- one rule for "nothing published" ------------------------------------------------------

def test_read_only_commands_on_nothing_published_say_so_and_exit_0(redis_proc, real_redis):
    for cmd in (["show"], ["status"], ["versions"]):
        res = invoke(redis_proc, *cmd)
        assert res.exit_code == 0 and res.stdout == "nothing published yet: run `banners load DATA_DIR` first\n", cmd
    res = invoke(redis_proc, "show", "--json")
    assert res.exit_code == 0 and res.stdout == "[]\n"
    res = invoke(redis_proc, "show", "--campaign", "7")  # a filter on nothing published: the same
    assert res.exit_code == 0 and res.stdout.startswith("nothing published yet")


# -- load --dry-run: a bounded list of changes ----------------------------------------------

def test_dry_run_lists_the_first_changes_and_counts_the_rest(redis_proc, real_redis, tmp_path):
    data = tmp_path / "data"
    write(data, "1/impressions_1.csv", IMPS + "".join(f"{100 + c},{c}\n" for c in range(1, 31)))
    assert invoke(redis_proc, "load", str(data), "--reject-log", os.devnull).exit_code == 3  # quarters 2-4 empty
    write(data, "1/impressions_1.csv", IMPS + "".join(f"{200 + c},{c}\n" for c in range(1, 31)))
    res = invoke(redis_proc, "load", str(data), "--dry-run", "--reject-log", os.devnull)
    lines = res.stdout.splitlines()
    assert res.exit_code == 3, res.output
    at = next(i for i, line in enumerate(lines) if line.startswith("changes against version "))
    listed = lines[at + 1:-1]
    assert listed[0] == "quarter 1: 0 campaign(s) added, 0 removed, 30 with other banners"
    assert listed[1] == "  ~ campaign 1: +201 -101"
    assert len(listed) == cli_load.MAX_CHANGE_LINES + 1 and listed[-1] == "... and 11 more line(s)"
    assert lines[-1].endswith("0 campaign(s) added, 0 removed, 30 with other banners (over all quarters)")


# -- file names as text, plurals -------------------------------------------------------------

def test_clean_escapes_controls_del_and_c1():
    assert clean(NASTY) == "\\x1b]0;title\\x07\\x1b[2J\\x0ax.csv"
    assert clean("a\x7fb\x9bc é") == "a\\x7fb\\x9bc é"


def test_file_names_the_load_prints_are_escaped(redis_proc, real_redis, full, tmp_path):
    write(full, f"2/{NASTY}", "not,a,known,header\n1,2,3,4\n")
    res = invoke(redis_proc, "load", str(full), "--reject-log", str(tmp_path / "r.jsonl"))
    assert res.exit_code == 3, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert "file rejected: 2/\\x1b]0;title\\x07\\x1b[2J\\x0ax.csv: invalid" in res.stdout
    res = invoke(redis_proc, "status")
    assert res.exit_code == 0 and "\x1b" not in res.output and "\\x1b[2J\\x0ax.csv" in res.stdout
    res = invoke(redis_proc, "load", str(full), "--dry-run", "--reject-log", os.devnull)
    assert "\x1b" not in res.output and "\\x1b[2J" in res.stdout


def test_sample_data_says_file_or_files(tmp_path, monkeypatch):
    import loader.sample_data

    monkeypatch.setattr(loader.sample_data, "write_sample", lambda out, seed, scale: [out / "1" / "a.csv"])
    res = CliRunner().invoke(main, ["sample-data", str(tmp_path / "s")])
    assert res.exit_code == 0 and res.stdout.startswith("wrote 1 file under ")


def test_campaigns_without_data_are_counted_in_the_summary(full, capsys):
    from loader.pipeline import compute

    result = compute(full, 1)
    cli_load._print_summary(result)
    assert "without data" not in capsys.readouterr().out  # the loader's count, when it has one
    result.campaigns_without_data = 3
    cli_load._print_summary(result)
    assert "campaigns.csv: 3 campaign(s) without data" in capsys.readouterr().out


# -- state files 0600 ------------------------------------------------------------------------

def test_the_reject_log_is_0600_whatever_the_umask(redis_proc, real_redis, full, tmp_path):
    write(full, "1/more.csv", CLICKS + "1,101,7\n")  # a duplicate: one rejection to log
    state = tmp_path / "state"
    old = os.umask(0)
    try:
        res = invoke(redis_proc, "load", str(full), "--state-dir", str(state))
        assert res.exit_code == 0, res.output
        assert stat.S_IMODE((state / "rejected.jsonl").stat().st_mode) == 0o600
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        write(full, "2/bad.csv", CLICKS + "x,1,1\n")
        res = invoke(redis_proc, "load", str(full), "--strict", "--state-dir", str(state))
        assert res.exit_code == 1 and stat.S_IMODE((state / "rejected.failed.jsonl").stat().st_mode) == 0o600
        with RejectLog(tmp_path / "direct.jsonl") as log:
            log.commit()
        assert stat.S_IMODE((tmp_path / "direct.jsonl").stat().st_mode) == 0o600
    finally:
        os.umask(old)


# -- settings from the registry ---------------------------------------------------------------

def test_settings_have_one_field_per_variable_with_a_setting_and_its_default():
    fields = {f.name: f.default for f in dataclasses.fields(config.Settings)}
    assert set(fields) == {v.setting for v in config.VARIABLES.values() if v.setting}
    for var in config.VARIABLES.values():
        if var.setting:
            want = var.get({})
            assert fields[var.setting] == (var.unset if want is None else want), var.name
    assert config.Settings.from_env({}) == config.Settings()


def test_a_new_variable_is_one_edit():
    extra = config.Var("BANNERS_TEST_ONLY", checks._int(1), "7", "a test's variable", setting="test_only")
    settings_class = config.settings_class({**config.VARIABLES, extra.name: extra})
    assert settings_class().test_only == 7
    assert settings_class.from_env({"BANNERS_TEST_ONLY": "9"}).test_only == 9
    with pytest.raises(config.SettingError, match="BANNERS_TEST_ONLY"):
        settings_class.from_env({"BANNERS_TEST_ONLY": "0"})


def test_serve_help_lists_every_route():
    out = CliRunner().invoke(main, ["serve", "--help"]).output
    for route in ("/dashboard", "/embed.js", "/campaigns/<id>/embed", "/click/<token>", "POST /conversions",
                  "/healthz", "/readyz", "/metrics", "/banners/<id>.svg"):
        assert route in out, route


def test_sample_data_scale_does_what_its_help_says(tmp_path):
    """--scale multiplies the row counts down to a floor of one impression per planned
    banner (about 64,000 rows), and the help says so (it promised ~80 rows at 0.0001)."""
    from banner_server.cli import main

    res = CliRunner().invoke(main, ["sample-data", "--help"])
    assert "64,000 rows" in res.output
    counts = {}
    for scale in (0.0001, 0.2):
        out = tmp_path / str(scale)
        assert CliRunner().invoke(main, ["sample-data", str(out), "--scale", str(scale)]).exit_code == 0
        counts[scale] = sum(len(p.read_text().splitlines()) - 1 for p in out.rglob("*.csv"))
    assert 55_000 < counts[0.0001] < 70_000
    assert counts[0.2] > 1.5 * counts[0.0001]
