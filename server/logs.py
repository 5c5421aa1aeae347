"""Logging set-up: one stdlib handler on the root logger, text or JSON lines, that never
lets a configured secret through."""

from __future__ import annotations

import json as jsonlib
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import quote, quote_plus

LEVELS = ("debug", "info", "warning", "error", "critical")
MASK = "******"
_HANDLER_NAME = "matinee"

#: Shorter values are not masked: replacing every "ab" in every line would make logs
#: unreadable, and a secret that short is no secret anyway.
MIN_SECRET_LENGTH = 4
#: Signed media tokens in URLs (`?token=...`, `&token=...`): whoever reads a log must not
#: be able to play what they name. Masked in every line, the access log's among them.
MEDIA_TOKEN = re.compile(r"(?<=[?&;]token=)[^&;\s\"']+")


class SecretFilter(logging.Filter):
    """Replaces registered secrets in a record's message and traceback with ******.

    Installed on the handler rather than a logger, because a logger's filters do not see
    records that propagate up from child loggers (aiohttp.access, nntp.connection, ...).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                # The forms a secret takes inside a logged URL count too.
                self._secrets.update({secret, quote(secret, safe=""), quote_plus(secret)})

    def mask(self, text: str) -> str:
        # Longest first, so that a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        if "token=" in text:
            text = MEDIA_TOKEN.sub(MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters cache the traceback text in exc_text; fill it now so that the
            # masked version is what every handler prints.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald or a log collector."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return jsonlib.dumps(entry, ensure_ascii=False)


def under_journald() -> bool:
    """stderr goes to journald: systemd says so in JOURNAL_STREAM (device:inode of it)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def setup_logging(
    level: str,
    *,
    json: bool = False,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> SecretFilter:
    """Send all logging at `level` and above to stderr (or `stream`), masking `secrets`.

    Calling it again replaces the handler it installed before, so the CLI and tests can
    call it more than once. Returns the filter, to register secrets learnt later.
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    secret_filter = SecretFilter(secrets)
    handler.addFilter(secret_filter)
    if json:
        handler.setFormatter(JsonFormatter())
    elif under_journald():
        # journald stamps and levels each line itself; the level stays readable in the text.
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    return secret_filter
