"""Real little movies made with ffmpeg, for tests that need a player or ffprobe to agree."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_movie(
    path: Path,
    *,
    seconds: float = 10.0,
    size: str = "640x360",
    faststart: bool = False,
    audio: str = "aac",
    bitrate: str = "2M",
) -> Path:
    """H.264 + audio in the container named by ``path``'s suffix (.mp4, .mkv, .webm...).

    MP4 without ``faststart`` keeps its moov atom at the end, as most releases do: the
    case that makes a progressive player ask for the file's tail first.
    """
    argv = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate, "-g", "50",
        "-pix_fmt", "yuv420p", "-c:a", audio,
    ]  # fmt: skip
    if path.suffix == ".mp4" and faststart:
        argv += ["-movflags", "+faststart"]
    argv.append(str(path))
    subprocess.run(argv, check=True, capture_output=True)
    return path
