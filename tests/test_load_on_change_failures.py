"""load_on_change.py --watch on a drop that keeps failing: said once, then retried
later and later (issue 18)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "load_on_change", Path(__file__).resolve().parent.parent / "deploy" / "load_on_change.py")
loc = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(loc)


class _Stop(Exception):
    pass


def test_a_repeated_failure_is_said_once_then_retried_with_a_growing_delay(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "clicks_1.csv").write_text("click_id,banner_id,campaign_id\n")
    fake = tmp_path / "banners"
    fake.write_text("#!/bin/sh\nfor i in $(seq 100); do echo \"  File x.py, line $i\"; done\n"
                    "echo 'PanicException: boom' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(loc, "banners_command", lambda: str(fake))
    clock = [0.0]
    loads = []
    real_load = loc.load

    def counting_load(*args, **kwargs):
        loads.append(clock[0])
        if len(loads) == 6:
            raise _Stop()
        return real_load(*args, **kwargs)

    def sleep(seconds):
        clock[0] += seconds

    monkeypatch.setattr(loc, "load", counting_load)
    monkeypatch.setattr(loc.time, "sleep", sleep)
    monkeypatch.setattr(loc.time, "monotonic", lambda: clock[0])
    with pytest.raises(_Stop):
        loc.watch(data, interval=1, settle=0, load_args=[])
    out = capsys.readouterr().out
    assert out.count("PanicException: boom") == 2  # the output's last line, and the reason once
    assert out.count("nothing published: PanicException: boom") == 1
    assert out.count("failed again the same way") == 4
    assert out.count("File x.py") == loc.SHOWN - 1  # only the first failure's output, its tail
    gaps = [b - a for a, b in zip(loads, loads[1:])]
    assert gaps == sorted(gaps) and gaps[-1] > 2 * gaps[0]
    assert "retrying in 1s" in out and "retrying in 8s" in out
