"""Editing the config file in place: ``matinee set-password`` sets ``[auth] password_hash``
and leaves every other line and comment as it was."""

from __future__ import annotations

import os
import re
import stat
import tempfile
import tomllib
from pathlib import Path

_TABLE_HEADER = re.compile(r"\s*\[(?!\[)\s*(?P<name>[^\]]*?)\s*\]\s*(?:#.*)?")
_ARRAY_HEADER = re.compile(r"\s*\[\[.*")
_HASH_KEY = re.compile(
    r"(?P<indent>\s*)(?:password_hash|\"password_hash\"|'password_hash')\s*=\s*(?P<rest>.*)"
)
_STRING_AND_COMMENT = re.compile(r"(?:\"(?:[^\"\\]|\\.)*\"|'[^']*')(?P<comment>\s*#.*)?")


def with_password_hash(text: str, encoded: str) -> tuple[str, str]:
    """The config file ``text`` with ``[auth] password_hash`` set to ``encoded``, every other
    line and comment untouched; and "replaced" or "added". Raises ValueError when the file is
    not TOML or is written in a way this line-based edit cannot change safely."""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    newline = "\r\n" if "\r\n" in text else "\n"
    line_for = f'password_hash = "{encoded}"'
    lines = text.splitlines(keepends=True)
    section: str | None = ""
    auth_header: int | None = None
    action = "added"
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        if _ARRAY_HEADER.fullmatch(body):
            section = None
            continue
        if header := _TABLE_HEADER.fullmatch(body):
            section = header["name"].strip("\"'")
            if section == "auth":
                auth_header = i
            continue
        if section == "auth" and (key := _HASH_KEY.fullmatch(body)):
            value = _STRING_AND_COMMENT.fullmatch(key["rest"].rstrip())
            comment = (value["comment"] or "") if value else ""
            lines[i] = key["indent"] + line_for + comment + line[len(body) :]
            action = "replaced"
            break
    else:
        if auth_header is not None:
            lines.insert(auth_header + 1, line_for + newline)
        else:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += newline
            lines.append(f"{newline if lines else ''}[auth]{newline}{line_for}{newline}")
    result = "".join(lines)
    # The edit is line based; check with a real parser that it did exactly what it should.
    try:
        after = tomllib.loads(result)
    except tomllib.TOMLDecodeError:
        after = {}
    auth_after = after.get("auth", {})
    if not isinstance(auth_after, dict) or auth_after.get("password_hash") != encoded:
        raise ValueError(
            "cannot find where to put the hash; add this line to the [auth] section: " + line_for
        )
    auth_after.pop("password_hash")
    auth_before = before.get("auth")
    if isinstance(auth_before, dict):
        auth_before.pop("password_hash", None)
    if not auth_after and "auth" not in before:
        after.pop("auth")
    if after != before:
        raise ValueError("editing the file would change more than password_hash")
    return result, action


def write_password_hash(path: Path, encoded: str) -> str:
    """Set ``[auth] password_hash`` in the config file at ``path`` (created when missing),
    replacing the file atomically; returns "replaced", "added" or "created"."""
    target = path.resolve()
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        text, action, mode = "", "created", 0o600
    else:
        action, mode = "", stat.S_IMODE(target.stat().st_mode)
    new_text, edit = with_password_hash(text, encoded)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(new_text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return action or edit
