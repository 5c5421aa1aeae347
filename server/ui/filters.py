"""How numbers and times read on a page: the Jinja filters every template may use (the JS in
``web/static/js/format.js`` words them the same)."""

from __future__ import annotations

import math
import time

from server.discovery.releases.ranking import format_size


def relative(ts: float | None, now: float | None = None) -> str:
    """ "in 3 h", "5 min ago"; "" for None."""
    if ts is None:
        return ""
    delta = ts - (time.time() if now is None else now)
    span = abs(delta)
    if span < 60:
        text = "less than a minute"
    elif span < 3600:
        text = f"{round(span / 60)} min"
    elif span < 48 * 3600:
        text = f"{round(span / 3600)} h"
    else:
        text = f"{round(span / 86400)} days"
    return f"in {text}" if delta > 0 else f"{text} ago"


def clock(seconds: float | None) -> str:
    """1:02:03 or 4:05."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def size(value: int | None) -> str:
    return format_size(value) if value else "—"


def speed(bps: float | None) -> str:
    return f"{format_size(int(bps))}/s" if bps else "—"


def eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return "—"
    if seconds < 60:
        return "less than a minute left"
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)} min left"
    return f"{seconds / 3600:.1f} h left"
