"""What Matinee measures about itself, in Prometheus terms: one registry per app (no
module-level state), handed to whoever observes (the job runners, the range server) and
read by ``{base}metrics`` (``server.http.health``). Imports nothing of Matinee, so every
layer may hold it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

#: Seconds: from a Watch (or an NZB) to the first moment the movie can play.
PLAYABLE_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
#: Seconds: a range request's first byte, and a wait for bytes not downloaded yet.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
#: Film seconds per second: an HLS output's speed (1 = real time).
SPEED_BUCKETS = (0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10, 20, 50)


class ServerCounts(Protocol):
    """What one Usenet server did since start-up (``nntp.line.ServerStats`` is one)."""

    name: str
    bytes: int  # decoded
    articles: int  # fetched whole
    missing: int
    corrupt: int
    timeouts: int
    errors: int


class _ServerCounters(Collector):
    """The engine's own per-server counts, read when Prometheus asks: nothing is counted
    twice, and the engine's hot path knows nothing of Prometheus."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[ServerCounts]] = tuple

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield from self._families(self.source())

    @staticmethod
    def _families(servers: Iterable[ServerCounts] = ()) -> Iterator[CounterMetricFamily]:
        downloaded = CounterMetricFamily(
            "matinee_downloaded_bytes",
            "Decoded bytes fetched from Usenet, by server.",
            labels=["server"],
        )
        articles = CounterMetricFamily(
            "matinee_articles",
            "Articles asked for, by server and outcome (ok; missing: not on that server;"
            " crc: corrupt; timeout: no data in time; error: the server failed, or the"
            " connection to it).",
            labels=["server", "outcome"],
        )
        for s in servers:
            downloaded.add_metric([s.name], s.bytes)
            outcomes = ("ok", s.articles), ("missing", s.missing), ("crc", s.corrupt)
            for outcome, n in (*outcomes, ("timeout", s.timeouts), ("error", s.errors)):
                articles.add_metric([s.name, outcome], n)
        yield downloaded
        yield articles


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self._servers = _ServerCounters()
        registry.register(self._servers)
        self.jobs = Gauge("matinee_jobs", "Jobs by status.", ["status"], registry=registry)
        self.download_speed = Gauge(
            "matinee_download_speed_bytes_per_second",
            "What the running downloads fetch now, together.",
            registry=registry,
        )
        self.disk_free = Gauge(
            "matinee_disk_free_bytes", "Free space on the downloads' disk.", registry=registry
        )
        self.to_playable = Histogram(
            "matinee_watch_to_playable_seconds",
            "From the job's start to the first moment its movie could play.",
            buckets=PLAYABLE_BUCKETS,
            registry=registry,
        )
        self.first_byte = Histogram(
            "matinee_media_first_byte_seconds",
            "From a media range request to its first byte.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.seek_wait = Histogram(
            "matinee_media_wait_seconds",
            "Waits of range responses for bytes not downloaded yet (a seek ahead).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.hls_sessions = Gauge(
            "matinee_hls_sessions", "HLS outputs being made by ffmpeg now.", registry=registry
        )
        self.hls_segment = Histogram(
            "matinee_hls_segment_seconds",
            "From an HLS segment request to the segment (made now, or already made).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.hls_speed = Histogram(
            "matinee_hls_speed",
            "Film seconds an ffmpeg run made per second while it ran unpaused, by kind (copy:"
            " the video copied; transcode: encoded). Below 1 a player waits for it.",
            ["kind"],
            buckets=SPEED_BUCKETS,
            registry=registry,
        )
        self.playback_failures = Counter(
            "matinee_playback_failures",
            "HLS requests that failed because ffmpeg or ffprobe could not make the output.",
            registry=registry,
        )
        self.deleted = Counter(
            "matinee_retention_deletions",
            "Deletions by the retention timers and for room, by reason (ready, idle, failed:"
            " the whole job; local: its local copy; space: room for another download).",
            ["reason"],
            registry=registry,
        )
        self.mirror_bytes = Counter(
            "matinee_mirror_uploaded_bytes",
            "Bytes of movies uploaded to R2 (parts R2 confirmed).",
            registry=registry,
        )
        self.mirror_uploads = Counter(
            "matinee_mirror_uploads",
            "Uploads of movies to R2 that ended, by outcome (ok, failed).",
            ["outcome"],
            registry=registry,
        )

    def count_servers(self, source: Callable[[], Iterable[ServerCounts]]) -> None:
        """Where ``matinee_downloaded_bytes`` and ``matinee_articles`` are read from."""
        self._servers.source = source
