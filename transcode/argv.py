"""ffmpeg command lines for HLS output (pure: plain lists, tested by equality).

One ffmpeg run writes fMP4 segments from a start point on: ``-ss`` at a segment's keyframe,
``-output_ts_offset`` by the same amount and ``movflags=+frag_discont`` so every fragment
carries the film's own timestamps (a restarted run continues the timeline instead of
starting at zero), ``-start_number`` so its files are numbered by position. Copied video is
cut at every keyframe (``-hls_time 0``); the session groups those pieces into the playlist's
segments. A transcode forces keyframes at the playlist's cut points and nowhere else.
Segments are written under temporary names and renamed when complete (``temp_file``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from transcode.compat import PlaybackPlan
from transcode.probe import MEDIA_DEMUXERS, URL_PROTOCOLS, is_url

FFMPEG = "ffmpeg"
USER_AGENT = "Matinee ffmpeg"
INIT_NAME = "init.mp4"
PLAYLIST_NAME = "ffmpeg.m3u8"
SEGMENT_PATTERN = "%d.m4s"
# Added to every timestamp of every run. Without it the first run's B-frame delay gives
# negative decode times, which the muxer shifts away (and restarted runs do not have): the
# timeline would jump by that shift at the first seek.
TIMELINE_OFFSET = 1.0

HardwareEncoder = Literal["vaapi", "nvenc", "qsv"]


@dataclass(frozen=True, slots=True)
class VideoEncoder:
    """How video is re-encoded to 8-bit H.264. ``hardware`` None is libx264 on the CPU."""

    hardware: HardwareEncoder | None = None
    device: str | None = None  # VAAPI/QSV render node, e.g. /dev/dri/renderD128
    preset: str = "veryfast"  # libx264: veryfast keeps up with 720p on two cores
    crf: int = 21
    threads: int = 2  # of libx264; a small server also has a download to run
    max_rate: str = "8M"  # caps what a bad source (noise, grain) can cost the line


@dataclass(frozen=True, slots=True)
class HlsOutput:
    """What one HLS session produces from the source: which streams, copied or encoded."""

    video_stream: int | None  # ffprobe stream indexes
    audio_stream: int | None
    copy_video: bool
    copy_audio: bool
    audio_channels: int = 2
    audio_bitrate: str = "192k"  # stereo; 5.1 gets twice that
    video_tag: str | None = None  # "hvc1" for copied HEVC
    audio_codec: str | None = None  # of the source's audio, where it is copied
    tonemap: bool = False
    burn_subtitle: int | None = None  # stream index of an image subtitle to draw in
    encoder: VideoEncoder = field(default_factory=VideoEncoder)

    @classmethod
    def from_plan(
        cls,
        plan: PlaybackPlan,
        *,
        burn_subtitle: int | None = None,
        encoder: VideoEncoder | None = None,
    ) -> HlsOutput:
        """The output for an HLS plan; burning a subtitle in forces a video transcode."""
        copy_video = plan.video_action == "copy" and burn_subtitle is None
        return cls(
            video_stream=plan.video_stream,
            audio_stream=plan.audio_stream,
            copy_video=copy_video,
            copy_audio=plan.audio_action == "copy",
            audio_channels=plan.audio_channels or 2,
            video_tag=plan.video_tag if copy_video else None,
            audio_codec=plan.audio_codec,
            tonemap=plan.tonemap and not copy_video,
            burn_subtitle=burn_subtitle,
            encoder=encoder or VideoEncoder(),
        )


def input_args(source: str, *, io_timeout: float | None = None) -> list[str]:
    """Where ffmpeg reads from: only the protocols and demuxers a movie needs, so a crafted
    file cannot make it open other files or URLs."""
    if is_url(source):
        args = ["-protocol_whitelist", URL_PROTOCOLS, "-user_agent", USER_AGENT]
        if io_timeout is not None:
            args += ["-rw_timeout", str(max(1, round(io_timeout * 1_000_000)))]
        return [*args, "-format_whitelist", MEDIA_DEMUXERS]
    if "://" in source:
        raise ValueError(f"only files and http(s) URLs can be read, not {source!r}")
    return ["-protocol_whitelist", "file", "-format_whitelist", MEDIA_DEMUXERS]


def input_target(source: str) -> str:
    # "file:" keeps names with a colon or a leading dash from being read as options.
    return source if is_url(source) else f"file:{Path(source).resolve()}"


def hls_argv(
    source: str,
    output: HlsOutput,
    out_dir: Path,
    *,
    start_number: int = 0,
    start_time: float = 0.0,
    seek_time: float | None = None,
    cuts: Sequence[float] = (),
    io_timeout: float | None = None,
    ffmpeg: str = FFMPEG,
) -> list[str]:
    """ffmpeg writing ``out_dir/{init.mp4, N.m4s, ffmpeg.m3u8}`` from ``start_time`` on.

    ``seek_time`` is where ffmpeg seeks (default ``start_time``); for copied video the caller
    passes a little past the keyframe, because ffmpeg's seek lands on the keyframe *before*
    its target when the video has B-frames. ``cuts`` are the playlist's cut points (film
    times) where a transcode must put keyframes.
    """
    seek = start_time if seek_time is None else seek_time
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
    argv += input_args(source, io_timeout=io_timeout)
    if output.copy_video:
        # Copied video starts at the keyframe; the re-encoded audio must start there too.
        argv.append("-noaccurate_seek")
    if seek > 0:
        argv += ["-ss", f"{seek:.6f}"]
    argv += ["-i", input_target(source)]
    argv += _stream_args(output, start_time, seek, cuts)
    argv += ["-map_metadata", "-1", "-map_chapters", "-1", "-max_muxing_queue_size", "4096"]
    # ffmpeg subtracts the -ss point from every timestamp; adding it back keeps film time.
    argv += ["-output_ts_offset", f"{seek + TIMELINE_OFFSET:.6f}"]
    argv += [
        "-f", "hls",
        "-hls_segment_type", "fmp4",
        "-hls_segment_options", "movflags=+frag_discont",
        "-hls_fmp4_init_filename", INIT_NAME,
        "-hls_time", "0" if output.video_stream is not None else "4",
        "-hls_list_size", "0",
        "-hls_flags", "temp_file",
        "-start_number", str(start_number),
        "-hls_segment_filename", str(out_dir / SEGMENT_PATTERN),
        str(out_dir / PLAYLIST_NAME),
    ]  # fmt: skip
    return argv


def _stream_args(
    output: HlsOutput, start_time: float, seek: float, cuts: Sequence[float]
) -> list[str]:
    args: list[str] = []
    if output.video_stream is not None:
        if output.burn_subtitle is not None:
            graph = f"[0:{output.video_stream}][0:{output.burn_subtitle}]overlay"
            if output.tonemap:
                graph += f",{TONEMAP}"
            args += ["-filter_complex", f"{graph}[v]", "-map", "[v]"]
        else:
            args += ["-map", f"0:{output.video_stream}"]
        if output.copy_video:
            args += ["-c:v", "copy"]
            if output.video_tag:
                args += ["-tag:v", output.video_tag]
        else:
            args += video_encoder_args(output.encoder)
            if output.tonemap and output.burn_subtitle is None:
                args += ["-vf", TONEMAP]
            # Keyframes exactly at the cut points after the start, in output time
            # (which starts at the seek point, before -output_ts_offset is added).
            forced = [c - seek for c in cuts if c > start_time + 0.001]
            args += ["-force_key_frames", ",".join(["0", *(f"{t:.3f}" for t in forced)])]
    if output.audio_stream is not None:
        args += ["-map", f"0:{output.audio_stream}"]
        if output.copy_audio:
            args += ["-c:a", "copy"]
            if output.audio_codec == "aac":
                # ADTS AAC (from MPEG-TS) must be repacked for MP4, and the HLS muxer turns
                # off ffmpeg's automatic bitstream filters for fMP4.
                args += ["-bsf:a", "aac_adtstoasc"]
        else:
            surround = output.audio_channels >= 6
            rate = output.audio_bitrate
            if surround:
                rate = f"{int(rate.removesuffix('k')) * 2}k" if rate.endswith("k") else rate
            args += ["-c:a", "aac", "-ac", "6" if surround else "2", "-b:a", rate]
    args += ["-sn", "-dn"]
    return args


# HDR10/HLG → SDR BT.709 with zimg (Debian's ffmpeg has zscale).
TONEMAP = (
    "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
    "tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
)


def video_encoder_args(encoder: VideoEncoder) -> list[str]:
    """8-bit H.264 High that hls.js and every browser play; keyframes only where forced."""
    if encoder.hardware is None:
        return [
            "-c:v", "libx264", "-preset", encoder.preset, "-crf", str(encoder.crf),
            "-maxrate", encoder.max_rate, "-bufsize", encoder.max_rate,
            "-profile:v", "high", "-pix_fmt", "yuv420p",
            "-threads", str(encoder.threads),
            "-sc_threshold", "0", "-g", "100000", "-keyint_min", "1",
        ]  # fmt: skip
    return [*hardware_args(encoder), "-g", "100000"]


def hardware_args(encoder: VideoEncoder) -> list[str]:
    """The encoder part of a hardware H.264 encode (decoding stays on the CPU: it works for
    every source and is never the bottleneck of a 1080p H.264 encode)."""
    if encoder.hardware == "vaapi":
        device = encoder.device or "/dev/dri/renderD128"
        return ["-vaapi_device", device, "-vf", "format=nv12,hwupload",
                "-c:v", "h264_vaapi", "-qp", str(encoder.crf)]  # fmt: skip
    if encoder.hardware == "nvenc":
        return ["-c:v", "h264_nvenc", "-preset", "p4", "-cq", str(encoder.crf),
                "-pix_fmt", "yuv420p"]  # fmt: skip
    if encoder.hardware == "qsv":
        args = ["-init_hw_device", f"qsv=hw:{encoder.device}"] if encoder.device else []
        return [*args, "-c:v", "h264_qsv", "-global_quality", str(encoder.crf),
                "-pix_fmt", "nv12"]  # fmt: skip
    raise ValueError(f"unknown hardware encoder {encoder.hardware!r}")


def encoder_probe_argv(encoder: VideoEncoder, ffmpeg: str = FFMPEG) -> list[str]:
    """A one-second encode of a test picture with ``encoder``: exit status 0 means usable."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
        *video_encoder_args(encoder), "-f", "null", "-",
    ]  # fmt: skip
