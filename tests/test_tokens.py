"""Signed media-URL tokens."""

from __future__ import annotations

from pathlib import Path

from server.http.tokens import load_or_create_secret, sign, verify

SECRET = b"s" * 32


def test_token_verifies_for_its_scope_until_it_expires() -> None:
    token = sign(SECRET, "job_1_ab", 1000)
    assert verify(SECRET, "job_1_ab", token, now=999)
    assert not verify(SECRET, "job_1_ab", token, now=1001)
    assert not verify(SECRET, "job_2_cd", token, now=999)
    assert not verify(b"t" * 32, "job_1_ab", token, now=999)


def test_tampered_tokens_fail() -> None:
    token = sign(SECRET, "job", 1000)
    exp, mac = token.split(".")
    for bad in [f"2000.{mac}", f"{exp}.{mac[:-1]}A", "", ".", "abc.def", "9" * 40 + "." + mac]:
        assert not verify(SECRET, "job", bad, now=0)


def test_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = load_or_create_secret(None, tmp_path)
    assert load_or_create_secret(None, tmp_path) == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    assert load_or_create_secret("configured-secret", tmp_path) == b"configured-secret"
