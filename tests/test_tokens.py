"""Signed click tokens and the secret they are signed with."""

import multiprocessing
import os

import pytest

from banner_server.web.tokens import TOKEN_TTL, BadToken, ClickSigner, ExpiredToken, load_secret

SIGNER = ClickSigner(b"s" * 32)
NOW = 1_800_000_000


def test_round_trip_over_the_whole_id_range():
    for campaign, banner in ((0, 0), (7, 123), (2**63 - 1, 2**63 - 1)):
        token = SIGNER.sign(campaign, banner, NOW)
        assert SIGNER.verify(token, NOW + 5) == (campaign, banner, NOW)
        assert token.isascii() and "/" not in token and "+" not in token and len(token) < 60


def test_expired_after_a_day():
    token = SIGNER.sign(7, 123, NOW)
    assert SIGNER.verify(token, NOW + TOKEN_TTL)
    with pytest.raises(ExpiredToken):
        SIGNER.verify(token, NOW + TOKEN_TTL + 1)


def test_forged_altered_and_junk_tokens_are_refused():
    token = SIGNER.sign(7, 123, NOW)
    other = ClickSigner(b"o" * 32).sign(7, 123, NOW)
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    spare = token[:-1] + chr(ord(token[-1]) ^ 1)  # the last character's spare bits: same bytes decoded
    for bad in (other, flipped, spare, token[:-1], token + "A", "", "x" * 40, "!!!!", "A" * 500, token.upper()):
        with pytest.raises(BadToken):
            SIGNER.verify(bad, NOW)


def test_secret_from_env_or_generated_once(tmp_path):
    assert load_secret("from-env-secret-value", tmp_path) == b"from-env-secret-value"
    first = load_secret(None, tmp_path)
    assert len(first) >= 32 and load_secret(None, tmp_path) == first
    assert oct((tmp_path / "secret").stat().st_mode & 0o777) == "0o600"


def _secret(path):
    return load_secret(None, path)


def test_concurrent_first_starts_agree_on_one_secret(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:
        got = pool.map(_secret, [tmp_path] * 32)
    assert len(set(got)) == 1 and [p.name for p in tmp_path.iterdir()] == ["secret"]
    assert os.path.getsize(tmp_path / "secret") > 32
