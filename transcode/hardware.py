"""Hardware H.264 encoders (VAAPI, NVENC, QSV): used when configured and found working,
never required. ``check_encoder`` runs a one-second test encode (argv from
``argv.encoder_probe_argv``), because an encoder listed by ``ffmpeg -encoders`` may still
lack its device, driver or permissions; the answer says why in words for the status page.
"""

from __future__ import annotations

from transcode.argv import FFMPEG, HardwareEncoder, VideoEncoder, encoder_probe_argv
from transcode.process import ProcessError, run

PROBE_TIMEOUT = 20.0


async def check_encoder(encoder: VideoEncoder, *, ffmpeg: str = FFMPEG) -> str | None:
    """None when ``encoder`` encodes here; otherwise why not (ffmpeg's own last word)."""
    try:
        await run(encoder_probe_argv(encoder, ffmpeg), timeout=PROBE_TIMEOUT)
    except ProcessError as exc:
        return exc.last_error_line or str(exc)
    return None


async def choose_encoder(
    configured: HardwareEncoder | None,
    *,
    device: str | None = None,
    ffmpeg: str = FFMPEG,
) -> tuple[VideoEncoder, str | None]:
    """The encoder to use: the configured hardware one if it works, else libx264; and why
    the hardware one was not taken (None when it was, or none was configured)."""
    if configured is None:
        return VideoEncoder(), None
    wanted = VideoEncoder(hardware=configured, device=device)
    why = await check_encoder(wanted, ffmpeg=ffmpeg)
    if why is None:
        return wanted, None
    return VideoEncoder(), f"{configured} does not work here ({why}); using libx264"
