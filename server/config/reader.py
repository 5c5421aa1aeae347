"""Reading one TOML table with types: every problem recorded with its key path, unknown keys
reported (typos must not pass silently), and the value checks that several sections share."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from server.config.settings import IPNetwork

_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%-]+")
MIN_API_KEY = 16


# Each takes a value already known to be a string and returns the normalised value or
# raises Invalid with the problem (the caller adds the key path).


class Invalid(ValueError):
    pass


def base_path(value: str) -> str:
    segments = [segment for segment in value.split("/") if segment]
    for segment in segments:
        if segment in (".", "..") or not _PATH_SEGMENT.fullmatch(segment):
            raise Invalid(f"{value!r} is not a URL path such as /matinee/")
    return "/" + "".join(segment + "/" for segment in segments)


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise Invalid("must be an http(s) URL")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError:
        raise Invalid("must be an http(s) URL with a valid port") from None
    return value.rstrip("/")


def network(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise Invalid("must be a string such as 10.0.0.1 or 192.168.1.0/24")
    try:
        # strict=False: "192.168.1.5/24" means that /24, not an error.
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise Invalid(f"{value!r} is not an IP address or network (CIDR)") from None


def api_key(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a string")
    if len(value) < MIN_API_KEY or value != value.strip() or "," in value:
        # Commas would split the key in MATINEE_API_KEYS; short keys can be guessed.
        raise Invalid(f"must be at least {MIN_API_KEY} characters, without spaces or commas")
    return value


def category(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Invalid("must be a positive integer (a newznab category such as 2000)")
    return value


_T = TypeVar("_T")
_MISSING: Any = object()


class Table:
    """Typed access to one TOML table that records problems instead of stopping at the
    first, and reports keys nobody asked for as unknown (typos must not pass silently)."""

    def __init__(
        self, data: object, path: str, errors: list[str], origins: Mapping[str, str]
    ) -> None:
        self.path_name = path
        self._errors = errors
        self._origins = origins
        self._seen: set[str] = set()
        self._failed: set[str] = set()
        self._data: Mapping[str, object] = data if isinstance(data, dict) else {}

    def _key(self, key: str) -> str:
        return f"{self.path_name}.{key}" if self.path_name else key

    def error(self, key: str, problem: str) -> None:
        path = self._key(key)
        # A list item ("auth.api_keys[1]") came from the variable that set the list.
        source = self._origins.get(path) or self._origins.get(path.partition("[")[0])
        self._failed.add(key)
        self._errors.append(f"{path}: {problem}" + (f" (from {source})" if source else ""))

    def has_error(self, key: str) -> bool:
        return key in self._failed

    def _get(self, key: str) -> object:
        self._seen.add(key)
        return self._data.get(key, _MISSING)

    def table(self, key: str) -> Table:
        raw = self._get(key)
        if raw is not _MISSING and not isinstance(raw, dict):
            self.error(key, f"must be a table ([{self._key(key)}])")
        return Table(raw, self._key(key), self._errors, self._origins)

    def array(self, key: str) -> list[Table]:
        raw = self._get(key)
        if raw is _MISSING:
            return []
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            self.error(key, f"must be an array of tables ([[{self._key(key)}]])")
            return []
        path = self._key(key)
        return [
            Table(item, f"{path}[{i}]", self._errors, self._origins) for i, item in enumerate(raw)
        ]

    def string(self, key: str, default: str, *, required: bool = False) -> str:
        raw = self._get(key)
        if raw is _MISSING:
            if required:
                self.error(key, "required")
            return default
        if not isinstance(raw, str):
            self.error(key, "must be a string")
            return default
        if required and not raw.strip():
            self.error(key, "must not be empty")
        return raw

    def optional_string(self, key: str) -> str | None:
        """An empty string means "not set", so the example file can leave secrets blank."""
        raw = self._get(key)
        if raw is _MISSING or raw == "":
            return None
        if not isinstance(raw, str):
            self.error(key, "must be a string")
            return None
        return raw

    def value(self, key: str, default: _T, check: Callable[[str], str]) -> _T | str:
        raw = self._get(key)
        if raw is _MISSING or (raw == "" and default is None):
            return default
        if not isinstance(raw, str):
            self.error(key, "must be a string")
            return default
        try:
            return check(raw)
        except Invalid as exc:
            self.error(key, str(exc))
            return default

    def integer(
        self, key: str, default: int, low: int | None = None, high: int | None = None
    ) -> int:
        raw = self._get(key)
        if raw is _MISSING:
            return default
        # bool is an int in Python, but `port = true` is a mistake in TOML.
        if (
            isinstance(raw, int)
            and not isinstance(raw, bool)
            and (low is None or raw >= low)
            and (high is None or raw <= high)
        ):
            return raw
        if low is not None and high is not None:
            self.error(key, f"must be an integer from {low} to {high}")
        elif low is not None:
            self.error(key, f"must be an integer of at least {low}")
        else:
            self.error(key, "must be an integer")
        return default

    def number(self, key: str, default: float) -> float:
        """A positive, finite number of (fractional) hours or seconds."""
        raw = self._get(key)
        if raw is _MISSING:
            return default
        if (
            isinstance(raw, int | float)
            and not isinstance(raw, bool)
            and math.isfinite(raw)
            and raw > 0
        ):
            return float(raw)
        self.error(key, "must be a number greater than 0")
        return default

    def limit(self, key: str, default: float) -> float:
        """A finite number of 0 or more, where 0 means "off" or "no limit"."""
        raw = self._get(key)
        if raw is _MISSING:
            return default
        if (
            isinstance(raw, int | float)
            and not isinstance(raw, bool)
            and math.isfinite(raw)
            and raw >= 0
        ):
            return float(raw)
        self.error(key, "must be a number of 0 (off) or more")
        return default

    def boolean(self, key: str, default: bool) -> bool:
        raw = self._get(key)
        if raw is _MISSING:
            return default
        if not isinstance(raw, bool):
            self.error(key, "must be true or false")
            return default
        return raw

    def path(self, key: str, default: Path, base_dir: Path) -> Path:
        raw = self._get(key)
        if raw is _MISSING:
            return default if default.is_absolute() else base_dir / default
        if not isinstance(raw, str) or not raw.strip():
            self.error(key, "must be a path (a non-empty string)")
            return base_dir / default
        return base_dir / Path(raw).expanduser()

    def list_of(
        self,
        key: str,
        check: Callable[[object], _T],
        what: str,
        *,
        default: list[_T] | None = None,
    ) -> list[_T]:
        raw = self._get(key)
        if raw is _MISSING:
            return list(default or [])
        if not isinstance(raw, list):
            self.error(key, f"must be a list of {what}")
            return list(default or [])
        result: list[_T] = []
        for i, item in enumerate(raw):
            try:
                result.append(check(item))
            except Invalid as exc:
                self.error(f"{key}[{i}]", str(exc))
        return result

    def finish(self) -> None:
        for key in self._data:
            if key not in self._seen:
                hint = difflib.get_close_matches(key, sorted(self._seen), n=1)
                what = "unknown key" if self.path_name else "unknown section"
                self.error(key, what + (f" (did you mean {hint[0]!r}?)" if hint else ""))
