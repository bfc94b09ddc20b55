"""Every Lua script is a file of banner_server/layout/lua/ headed by its KEYS and ARGV,
and ships in the package."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from banner_server.layout import scripts

HEADER = re.compile(r"-- (KEYS|ARGV)\[(\d+)(\.\.)?\] = \S")


def header(source: str) -> dict[str, set[int]]:
    """The KEYS/ARGV indexes the opening comment lines declare (`ARGV[5..]` declares 5 on)."""
    declared: dict[str, set[int]] = {"KEYS": set(), "ARGV": set()}
    for line in source.splitlines():
        if not line.startswith("--"):
            break
        m = HEADER.match(line)
        if m:
            declared[m.group(1)].add(int(m.group(2)) if not m.group(3) else -int(m.group(2)))
    return declared


@pytest.mark.parametrize("script", scripts.ALL, ids=lambda s: s.name)
def test_every_script_opens_with_its_keys_and_argv(script):
    source = script.source
    assert source.startswith(("-- KEYS[1] = ", "-- ARGV[1] = ")), f"{script.name}.lua must open with its header"
    declared = header(source)
    body = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("--"))
    for kind in ("KEYS", "ARGV"):
        used = {int(n) for n in re.findall(rf"{kind}\[(\d+)\]", body)}
        open_from = min((-n for n in declared[kind] if n < 0), default=None)
        missing = {n for n in used if n not in declared[kind] and not (open_from and n >= open_from)}
        assert not missing, f"{script.name}.lua uses {kind} {sorted(missing)} without a header line"
    # Every key a script touches comes in KEYS (cluster-safe): no key built inside Lua.
    calls = re.findall(r"redis\.call\([^)]*\)", body)
    assert calls and all(re.match(r"redis\.call\('[A-Z]+', KEYS\[\d+\]", c) for c in calls), calls


def test_the_lua_files_are_all_loaded_and_no_python_string_holds_lua():
    files = {p.stem for p in scripts.LUA_DIR.glob("*.lua")}
    assert files == {s.name for s in scripts.ALL}
    root = Path(__file__).resolve().parents[1]
    for py in [*root.joinpath("banner_server").rglob("*.py"), *root.joinpath("loader").rglob("*.py")]:
        assert "redis.call(" not in py.read_text(encoding="utf-8"), f"Lua inside {py.relative_to(root)}"


@pytest.mark.slow
def test_a_built_wheel_ships_the_lua_files(tmp_path):
    import shutil

    # Built from a copy: a build in the checkout leaves build/ and *.egg-info behind.
    src = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parents[1], src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "var", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "tests", "bench"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(src)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("banner_server-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for s in scripts.ALL:
        assert f"banner_server/layout/lua/{s.name}.lua" in names
