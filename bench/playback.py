"""Playback benchmark: progressive playback latency of `matinee serve`, and range-serving
throughput of a finished movie against nginx serving the same file.

What it does, all in one temp dir that is removed at the end (also on Ctrl-C or failure):

1. starts a private INN2 (`python -m tests.support.inn2 serve`, a subprocess: bench/ never
   imports tests/), writes `Bench.Movie.2026.1080p.mkv` of `--size-mb` MiB (pseudo-random
   bytes derived from a seed, 1 MiB block by block, so any range can be recomputed to
   check what the server sends without keeping the file), posts it straight to innd and
   deletes it; starts `matinee serve` with a private config (that INN2, 8 connections,
   one active download);
2. runs one job to `ready` (its download speed, from the job's events, is the calibration
   step 3 needs), checks the finished file (SHA-256), starts nginx (Debian's, a private
   config: `sendfile on`, `access_log off`, `worker_processes auto`) on the file's folder,
   and loads both with wrk, `--readers` connections, each in its own wrk thread, for
   `--seconds`: random 4 MiB ranges, then each reader reading the file sequentially in
   64 MiB ranges from a random start. nginx and Matinee take turns (3 runs each per mode,
   after one short unmeasured warm-up each); Matinee is read through the token URL from
   `/stream`, without the API key. Then the job is deleted (the disk holds one copy);
3. `--rounds` times: submits the NZB again (`POST /jobs`, multipart) and measures
   * time to first MiB: from sending the POST, polling `GET /movies/{job}/stream` every
     20 ms until it answers 200, to the last byte of `GET url` with `Range: bytes=0-1048575`;
   * time to first byte of ranges not downloaded yet: while the job is still
     `downloading`, 256 KiB ranges at 5 offsets spread over 60-95 % of the file (highest
     first, as the download is sequential), each requested only when it lies beyond the
     most the download can have reached: the larger of the job's `bytes_done` plus 1.5 s
     at its `speed_bps` (both are refreshed once a second) and 1.5 times the calibration
     speed since the POST, plus 16 MiB; the clock runs from sending the request to the
     first body byte;
   and where the time before the first MiB went, from the job's events in Matinee's
   SQLite file (read only); then deletes the job (`DELETE /jobs/{id}`);
4. prints a table, the ratios, then one JSON line with every number.

Every byte read by this script is compared with the source; wrk's answers are counted
(any status other than 206, or a socket error, fails the check). The exit status is
non-zero only when a check failed; the targets (first MiB <= 1.5 s, TTFB <= 1.0 s,
Matinee/nginx >= 0.8) are reported, not asserted. The machine is shared and noisy:
compare medians and ratios from the same run, not absolute figures from different runs.

    .venv/bin/python bench/playback.py [--size-mb 2048] [--rounds 5] [--readers 32]
                                       [--seconds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import pwd
import random
import secrets
import sqlite3
import statistics
import subprocess
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from common import (
    LOOPBACK,
    MIB,
    POST_CONNECTIONS,
    BenchError,
    Inn2,
    free_port,
    install_signal_handlers,
    log,
    matinee_exe,
    sha256_file,
    stop_process,
    tree_cpu_seconds,
    workspace,
)

NAME = "Bench.Movie.2026.1080p.mkv"
API = "/api/movies-on-demand"
NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"
STREAM_POLL = 0.02  # seconds between /stream polls
FIRST_BYTES = MIB  # what "the first MiB" is
PROBE_LENGTH = 256 * 1024  # bytes of each not-yet-downloaded range
PROBE_FRACTIONS = (0.95, 0.8625, 0.775, 0.6875, 0.60)  # highest first: the download is behind
PROBE_JITTER = 0.02
FRONTIER_SECONDS = 1.5  # bytes_done is refreshed once a second: allow for that, and more
FRONTIER_SPEEDUP = 1.5  # the download may run this much faster than the calibration job did
FRONTIER_MARGIN = 16 * MIB
RANDOM_CHUNK = 4 * MIB
SEQUENTIAL_CHUNK = 64 * MIB
MEASURED_TURNS = 3
WARMUP_SECONDS = 2
HTTP_TIMEOUT = 60.0
SERVER_START_TIMEOUT = 60.0

TARGET_FIRST_MIB = 1.5
TARGET_TTFB = 1.0
TARGET_RATIO = 0.8


# -- the source bytes -------------------------------------------------------------------


class Source:
    """`size` pseudo-random bytes: block i (1 MiB) is SHAKE-128(seed || i), so any range can
    be recomputed instead of kept (the file, INN2's spool and Matinee's copy would not all
    fit in the disk budget)."""

    def __init__(self, size: int, seed: bytes | None = None) -> None:
        self.size = size
        self.seed = seed if seed is not None else secrets.token_bytes(16)
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def block(self, index: int) -> bytes:
        data = self._cache.get(index)
        if data is None:
            length = min(MIB, self.size - index * MIB)
            data = hashlib.shake_128(self.seed + index.to_bytes(8, "big")).digest(length)
            self._cache[index] = data
            if len(self._cache) > 16:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return data

    def read(self, offset: int, length: int) -> bytes:
        end = min(self.size, offset + length)
        out = bytearray()
        pos = offset
        while pos < end:
            index, within = divmod(pos, MIB)
            take = min(MIB - within, end - pos)
            out += self.block(index)[within : within + take]
            pos += take
        return bytes(out)

    def write(self, path: Path) -> str:
        """Write the whole file; its SHA-256."""
        h = hashlib.sha256()
        with path.open("wb") as f:
            for index in range((self.size + MIB - 1) // MIB):
                length = min(MIB, self.size - index * MIB)
                data = hashlib.shake_128(self.seed + index.to_bytes(8, "big")).digest(length)
                h.update(data)
                f.write(data)
        return h.hexdigest()


# -- HTTP ---------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class RangeRead:
    status: int
    content_range: str | None
    body: bytes
    ttfb: float  # request sent -> first body byte, seconds
    seconds: float  # request sent -> last body byte


class Http:
    """One keep-alive HTTP/1.1 connection to a loopback server, reopened when it closes."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.headers = headers or {}
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=HTTP_TIMEOUT)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _send(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> http.client.HTTPResponse:
        for attempt in (1, 2):
            reused = self.conn is not None
            try:
                conn = self._connection()
                conn.request(method, path, body=body, headers={**self.headers, **headers})
                return conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server had closed: one fresh try.
                self.close()
                if attempt == 2 or not reused:
                    raise
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        resp = self._send(method, path, headers or {}, body)
        data = resp.read()
        if resp.will_close:
            self.close()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def read_range(self, path: str, start: int, length: int) -> RangeRead:
        t0 = time.perf_counter()
        resp = self._send("GET", path, {"Range": f"bytes={start}-{start + length - 1}"}, None)
        first = resp.read(1)
        t1 = time.perf_counter()
        rest = resp.read()
        t2 = time.perf_counter()
        if resp.will_close:
            self.close()
        return RangeRead(
            resp.status, resp.getheader("Content-Range"), first + rest, t1 - t0, t2 - t0
        )


def multipart(field_name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            "Content-Type: application/x-nzb\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def wait_http(
    port: int, path: str, proc: subprocess.Popen[bytes], what: str, *, any_answer: bool = False
) -> None:
    """Until `GET path` answers 200 (with `any_answer`, anything but a 5xx)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited ({proc.returncode}) while starting; see its log")
        with contextlib.suppress(OSError, http.client.HTTPException):
            client = Http(port)
            try:
                status = client.request("GET", path).status
                if status == 200 or (any_answer and status < 500):
                    return
            finally:
                client.close()
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not answer on :{port} within {SERVER_START_TIMEOUT} s")
        time.sleep(0.05)


# -- Matinee ------------------------------------------------------------------------------


@dataclass
class Submitted:
    job_id: str
    sent: float  # time.perf_counter() as the POST went out
    sent_wall: float  # time.time() then, to compare with the job's event times
    answered: float  # seconds from sending the POST to its 202


class Matinee:
    """`matinee serve` with a private config in `directory`."""

    def __init__(
        self,
        directory: Path,
        *,
        nntp_port: int,
        connections: int,
        max_active: int = 1,
        tls: bool = False,
        env: dict[str, str] | None = None,
        exe: str | None = None,
    ) -> None:
        self.directory = directory
        self.data_dir = directory / "data"
        self.port = free_port()
        self.key = secrets.token_hex(16)  # 32 characters
        self.nntp_port = nntp_port
        self.connections = connections
        self.max_active = max_active
        self.tls = tls
        self.env = env
        self.exe = exe
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = Http(self.port, {"X-Api-Key": self.key})

    def start(self) -> None:
        self.directory.mkdir()
        conf = self.directory / "config.toml"
        conf.write_text(
            "[server]\n"
            f'host = "{LOOPBACK}"\n'
            f"port = {self.port}\n"
            f'data_dir = "{self.data_dir}"\n'
            "\n[auth]\n"
            f'api_keys = ["{self.key}"]\n'
            "\n[[usenet.servers]]\n"
            'name = "inn2"\n'
            f'host = "{LOOPBACK}"\n'
            f"port = {self.nntp_port}\n"
            f"tls = {'true' if self.tls else 'false'}\n"
            f"connections = {self.connections}\n"
            "\n[downloads]\n"
            f"max_active = {self.max_active}\n"
        )
        conf.chmod(0o600)
        with (self.directory / "matinee.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [self.exe or matinee_exe(), "serve", "--config", str(conf)],
                cwd=self.directory,
                env=None if self.env is None else {**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_http(self.port, "/api/health", self.proc, "matinee serve")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, n: int = 2000) -> str:
        path = self.directory / "matinee.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def call(self, method: str, path: str, **kw: Any) -> Reply:
        return self.api.request(method, API + path, **kw)

    def submit(self, nzb: Path) -> Submitted:
        """POST /jobs with the NZB; the clock starts as the request is sent."""
        body, ctype = multipart("nzb", nzb.name, nzb.read_bytes())
        wall, t0 = time.time(), time.perf_counter()
        reply = self.call("POST", "/jobs", headers={"Content-Type": ctype}, body=body)
        answered = time.perf_counter() - t0
        if reply.status != 202:
            raise BenchError(f"POST /jobs answered {reply.status}: {reply.body[:500]!r}")
        return Submitted(str(reply.json()["job_id"]), t0, wall, answered)

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.call("GET", f"/jobs/{job_id}")
        if reply.status != 200:
            raise BenchError(f"GET /jobs/{job_id} answered {reply.status}")
        job: dict[str, Any] = reply.json()
        return job

    def stream(self, job_id: str) -> dict[str, Any] | None:
        reply = self.call("GET", f"/movies/{job_id}/stream")
        if reply.status == 400:
            return None
        if reply.status != 200:
            raise BenchError(f"GET /movies/{job_id}/stream answered {reply.status}")
        info: dict[str, Any] = reply.json()
        return info

    def delete(self, job_id: str) -> None:
        reply = self.call("DELETE", f"/jobs/{job_id}")
        if reply.status != 200 or reply.json().get("status") != "deleted":
            raise BenchError(f"DELETE /jobs/{job_id} answered {reply.status}: {reply.body[:300]!r}")

    def events(self, job_id: str) -> list[tuple[str, float]]:
        """(kind, unix time) of the job's events, from the SQLite file (read only)."""
        db = self.data_dir / "matinee.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            rows = c.execute(
                "SELECT kind, at FROM job_events WHERE job_id = ? ORDER BY id", (job_id,)
            ).fetchall()
        return [(str(k), float(a)) for k, a in rows]

    def stop(self) -> None:
        self.api.close()
        if self.proc is not None:
            proc, self.proc = self.proc, None
            stop_process(proc, timeout=20, group=True)


# -- nginx --------------------------------------------------------------------------------


class Nginx:
    """Debian's nginx in the foreground with a private config serving `root`."""

    def __init__(self, directory: Path, root: Path) -> None:
        self.directory = directory
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        d = self.directory
        d.mkdir()
        (d / "tmp").mkdir()
        user = ""
        if os.geteuid() == 0:
            # Workers would run as nobody and could not enter the private temp dir.
            user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n"
        temp = "".join(
            f"    {kind}_temp_path {d / 'tmp' / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = d / "nginx.conf"
        conf.write_text(
            f"{user}"
            "worker_processes auto;\n"
            "daemon off;\n"
            f"pid {d / 'nginx.pid'};\n"
            f"error_log {d / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    access_log off;\n"
            "    sendfile on;\n"
            "    tcp_nopush on;\n"
            "    keepalive_requests 1000000;\n"
            "    keepalive_timeout 75s;\n"
            "    types { video/x-matroska mkv; }\n"
            "    default_type application/octet-stream;\n"
            f"{temp}"
            "    server {\n"
            f"        listen {LOOPBACK}:{self.port};\n"
            f"        root {self.root};\n"
            "    }\n"
            "}\n"
        )
        with (d / "nginx.stderr").open("wb") as err:
            self.proc = subprocess.Popen(
                [NGINX, "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)],
                cwd=d,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_http(self.port, "/", self.proc, "nginx", any_answer=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            stop_process(proc, timeout=10, group=True)


# -- wrk ----------------------------------------------------------------------------------

WRK_SCRIPT = r"""
-- Range readers for bench/playback.py. Arguments: mode (random|sequential), file size,
-- range length, seed. One connection per wrk thread, so each thread is one reader.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  mode = args[1]
  size = tonumber(args[2])
  chunk = tonumber(args[3])
  math.randomseed(tonumber(args[4]) + 7919 * tid)
  math.random(); math.random()
  nchunks = math.ceil(size / chunk)
  pos = math.floor(math.random() * nchunks)
end

function request()
  local first, last
  if mode == "random" then
    first = math.floor(math.random() * (size - chunk + 1))
    last = first + chunk - 1
  else
    first = pos * chunk
    last = math.min(size, first + chunk) - 1
    pos = (pos + 1) % nchunks
  end
  return wrk.format(nil, nil, {["Range"] = string.format("bytes=%.0f-%.0f", first, last)})
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"bytes": %.0f, "requests": %.0f, "duration_us": %.0f, "connect": %.0f, "read": %.0f, ' ..
    '"write": %.0f, "status": %.0f, "timeout": %.0f, "latency_p50_ms": %.1f, ' ..
    '"latency_p99_ms": %.1f}\n',
    summary.bytes, summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


@dataclass
class LoadRun:
    server: str  # nginx | matinee
    mode: str  # random | sequential
    turn: int  # 0 = warm-up
    mb_per_s: float
    requests: int
    seconds: float
    errors: dict[str, int]
    latency_p50_ms: float
    latency_p99_ms: float
    server_cpu_s: float
    wrk_cpu_s: float

    @property
    def ok(self) -> bool:
        return self.requests > 0 and not any(self.errors.values())


def run_wrk(
    script: Path,
    url: str,
    *,
    server: str,
    mode: str,
    turn: int,
    size: int,
    readers: int,
    seconds: int,
    server_pid: int,
) -> LoadRun:
    chunk = RANDOM_CHUNK if mode == "random" else SEQUENTIAL_CHUNK
    cmd = [
        WRK,
        "-t",
        str(readers),
        "-c",
        str(readers),
        "-d",
        f"{seconds}s",
        "--timeout",
        "60s",
        "-s",
        str(script),
        url,
        "--",
        mode,
        str(size),
        str(min(chunk, size)),
        str(random.randrange(1 << 30)),
    ]
    out_path = script.with_name(f"wrk-{server}-{mode}-{turn}.out")
    cpu0 = tree_cpu_seconds(server_pid)
    with out_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            stop_process(proc, timeout=5, group=False)
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = tree_cpu_seconds(server_pid) - cpu0
    text = out_path.read_text(errors="replace")
    result: dict[str, Any] = {}
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                result = json.loads(line)
                break
    if proc.returncode != 0 or not result:
        raise BenchError(f"wrk failed ({proc.returncode}): {text[-1500:]}")
    duration = result["duration_us"] / 1e6
    errors = {k: int(result[k]) for k in ("connect", "read", "write", "status", "timeout")}
    return LoadRun(
        server=server,
        mode=mode,
        turn=turn,
        mb_per_s=result["bytes"] / duration / 1e6,
        requests=int(result["requests"]),
        seconds=duration,
        errors=errors,
        latency_p50_ms=float(result["latency_p50_ms"]),
        latency_p99_ms=float(result["latency_p99_ms"]),
        server_cpu_s=cpu,
        wrk_cpu_s=usage.ru_utime + usage.ru_stime,
    )


# -- the rounds ---------------------------------------------------------------------------


@dataclass
class Probe:
    offset: int
    fraction: float  # of the file
    job_progress: float  # % the job reported just before
    frontier: int  # the (high) estimate of how far the download had got
    ttfb: float | None = None
    seconds: float | None = None
    ok: bool | None = None
    skipped: str | None = None


@dataclass
class Round:
    index: int
    size: int
    job_id: str = ""
    post_seconds: float = 0.0  # POST sent -> 202
    playable_seconds: float = 0.0  # POST sent -> /stream answered 200
    first_mib_seconds: float = 0.0  # POST sent -> the whole first MiB received
    first_mib_ttfb: float = 0.0  # its GET sent -> first body byte
    polls: int = 0
    first_mib_ok: bool = False
    phases: dict[str, float] = field(default_factory=dict)
    progress_after_first_mib: float = 0.0
    status_after_first_mib: str = ""
    probes: list[Probe] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.first_mib_ok and all(p.ok is not False for p in self.probes)


def check_range(got: RangeRead, source: Source, start: int, length: int) -> bool:
    end = min(source.size, start + length) - 1
    return (
        got.status == 206
        and got.content_range == f"bytes {start}-{end}/{source.size}"
        and got.body == source.read(start, length)
    )


def play_round(
    index: int, matinee: Matinee, nzb: Path, source: Source, calibrated_bps: float
) -> Round:
    r = Round(index, source.size)
    media = Http(matinee.port)  # the token URL needs no API key
    try:
        sub = matinee.submit(nzb)
        r.job_id, r.post_seconds, t0, wall0 = sub.job_id, sub.answered, sub.sent, sub.sent_wall
        info = None
        while info is None:
            if time.perf_counter() - t0 > 120:
                raise BenchError(f"{r.job_id} did not become playable within 120 s")
            r.polls += 1
            info = matinee.stream(r.job_id)
            if info is None:
                time.sleep(STREAM_POLL)
        r.playable_seconds = time.perf_counter() - t0
        url = str(info["url"])
        if int(info["size"]) != source.size:
            raise BenchError(f"/stream reports size {info['size']}, expected {source.size}")
        got = media.read_range(url, 0, FIRST_BYTES)
        r.first_mib_seconds = time.perf_counter() - t0
        r.first_mib_ttfb = got.ttfb
        r.first_mib_ok = check_range(got, source, 0, FIRST_BYTES)

        job = matinee.job(r.job_id)
        r.progress_after_first_mib = float(job["progress"])
        r.status_after_first_mib = str(job["status"])
        if job["status"] != "downloading" or job["progress"] >= 100:
            r.note = f"download already {job['status']} ({job['progress']}%) after the first MiB"
        else:
            rng = random.Random()
            for fraction in PROBE_FRACTIONS:
                jittered = fraction + rng.uniform(-PROBE_JITTER, PROBE_JITTER)
                offset = min(source.size - PROBE_LENGTH, int(source.size * jittered))
                job = matinee.job(r.job_id)
                # How far the download may have got: what the job reported (up to a second
                # old) plus its speed, or the calibration job's speed since the POST, more
                # generous either way. Offsets below that are not asked for.
                frontier = int(
                    max(
                        job["bytes_done"] + float(job["speed_bps"] or 0) * FRONTIER_SECONDS,
                        calibrated_bps * FRONTIER_SPEEDUP * (time.perf_counter() - t0),
                    )
                    + FRONTIER_MARGIN
                )
                probe = Probe(offset, offset / source.size, float(job["progress"]), frontier)
                r.probes.append(probe)
                if job["status"] != "downloading":
                    probe.skipped = f"job {job['status']}"
                    continue
                if offset < frontier:
                    probe.skipped = "probably on disk already"
                    continue
                got = media.read_range(url, offset, PROBE_LENGTH)
                probe.ttfb, probe.seconds = got.ttfb, got.seconds
                probe.ok = check_range(got, source, offset, PROBE_LENGTH)
            if r.probes and all(p.skipped and p.skipped.startswith("job") for p in r.probes):
                r.note = "the download ended before any range could be asked"
        events = matinee.events(r.job_id)
        r.phases = phases(events, wall0, r)
        matinee.delete(r.job_id)
        return r
    finally:
        media.close()


def phases(events: list[tuple[str, float]], wall0: float, r: Round) -> dict[str, float]:
    """Where the time to the first MiB went, from the job's event times (wall clock)."""
    at = {kind: t - wall0 for kind, t in reversed(events)}  # the first of each kind
    out: dict[str, float] = {"post_answered": round(r.post_seconds, 3)}
    for kind in ("queued", "downloading", "playable"):
        if kind in at:
            out[kind] = round(at[kind], 3)
    out["stream_200_seen"] = round(r.playable_seconds, 3)
    out["first_mib_received"] = round(r.first_mib_seconds, 3)
    return out


@dataclass
class Ready:
    job_id: str
    info: dict[str, Any]  # what /stream answered
    path: Path  # the finished movie
    seconds: float  # POST sent -> ready seen
    download_seconds: float  # from the job's events: downloading -> preparing


def run_to_ready(matinee: Matinee, nzb: Path, size: int) -> Ready:
    sub = matinee.submit(nzb)
    job_id, t0 = sub.job_id, sub.sent
    deadline = time.monotonic() + max(180.0, size / 10e6)
    while True:
        job = matinee.job(job_id)
        if job["status"] == "ready":
            break
        if job["status"] in ("error", "deleted"):
            raise BenchError(f"{job_id} ended {job['status']}: {job.get('error_message')}")
        if time.monotonic() > deadline:
            raise BenchError(f"{job_id} was not ready in time ({job['status']})")
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    at = {kind: when for kind, when in reversed(matinee.events(job_id))}
    download_seconds = at.get("preparing", 0.0) - at.get("downloading", 0.0)
    if download_seconds <= 0:
        raise BenchError(f"{job_id}: no downloading/preparing events ({sorted(at)})")
    info = matinee.stream(job_id)
    if info is None or info.get("kind") != "file":
        raise BenchError(f"/stream of the ready job: {info}")
    name = unquote(urlsplit(str(info["url"])).path.rsplit("/", 1)[-1])
    path = matinee.data_dir / "downloads" / job_id / name
    if not path.is_file():
        raise BenchError(f"the finished movie is not at {path}")
    return Ready(job_id, info, path, seconds, download_seconds)


# -- report -------------------------------------------------------------------------------


def med(values: list[float], digits: int = 3) -> float | None:
    return round(statistics.median(values), digits) if values else None


def fmt(value: float | None, spec: str = ".3f", unit: str = " s") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def verdict(value: float | None, target: float, *, at_least: bool = False) -> str:
    if value is None:
        return "not measured"
    met = value >= target if at_least else value <= target
    return "met" if met else "MISSED"


# -- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Playback benchmark: progressive playback latency, and range serving "
        "of a finished file against nginx.",
    )
    parser.add_argument("--size-mb", type=int, default=2048, help="post size in MiB")
    parser.add_argument("--rounds", type=int, default=5, help="progressive playback rounds")
    parser.add_argument("--readers", type=int, default=32, help="concurrent range readers")
    parser.add_argument("--seconds", type=int, default=10, help="length of each load run")
    parser.add_argument("--connections", type=int, default=8, help="NNTP connections")
    parser.add_argument("--tmp", default=None, help="where to make the temp dir")
    args = parser.parse_args(argv)
    if args.size_mb < 80 or args.rounds < 1 or args.readers < 1 or args.seconds < 1:
        parser.error("--size-mb >= 80 (the ranges need room), rounds/readers/seconds >= 1")
    for tool in (NGINX, WRK):
        if not Path(tool).exists():
            parser.error(f"{tool} is missing (bash .ci/system-deps.sh)")

    install_signal_handlers()
    started = time.monotonic()
    inn2: Inn2 | None = None
    matinee: Matinee | None = None
    nginx: Nginx | None = None
    rounds: list[Round] = []
    loads: list[LoadRun] = []
    checks: dict[str, bool] = {}
    extra: dict[str, Any] = {}
    source = Source(args.size_mb * MIB)
    try:
        with workspace(args.tmp) as tmp:
            try:
                log(f"temp dir {tmp}; starting INN2 ...")
                inn2 = Inn2(tmp / "inn2")
                inn2.start()
                log(f"INN2 reader on {LOOPBACK}:{inn2.port}")
                src = tmp / NAME
                nzb = tmp / f"{NAME}.nzb"
                log(f"writing {args.size_mb} MiB of seeded random data ...")
                digest = source.write(src)
                log(f"posting {NAME} to innd ({POST_CONNECTIONS} connections) ...")
                try:
                    posted = inn2.post_file(src, nzb)
                finally:
                    src.unlink(missing_ok=True)
                extra["post_mb_per_s"] = posted.get("mb_per_s")
                extra["segments"] = posted.get("segments")
                log(f"  posted {posted.get('segments')} articles at {posted.get('mb_per_s')} MB/s")

                matinee = Matinee(
                    tmp / "matinee", nntp_port=inn2.port, connections=args.connections
                )
                matinee.start()
                log(f"matinee serve on {LOOPBACK}:{matinee.port}")

                # The finished-file comparison first: its job also tells how fast a download
                # runs here, which the rounds need to tell which offsets are not on disk yet.
                log("running one job to ready ...")
                ready = run_to_ready(matinee, nzb, source.size)
                calibrated_bps = source.size / ready.download_seconds
                extra["ready_seconds"] = round(ready.seconds, 2)
                extra["ready_download_mb_per_s"] = round(calibrated_bps / 1e6, 1)
                ok = ready.path.stat().st_size == source.size
                ok = ok and sha256_file(ready.path) == digest
                checks["finished_file_sha256"] = ok
                log(
                    f"  {ready.job_id} ready in {ready.seconds:.2f} s (download "
                    f"{calibrated_bps / 1e6:.0f} MB/s); SHA-256 {'ok' if ok else 'BAD'}"
                )
                nginx = Nginx(tmp / "nginx", ready.path.parent)
                nginx.start()
                urls = {
                    "nginx": f"http://{LOOPBACK}:{nginx.port}/{ready.path.name}",
                    "matinee": f"http://{LOOPBACK}:{matinee.port}{ready.info['url']}",
                }
                pids = {"nginx": nginx.pid, "matinee": matinee.pid}
                log(f"nginx on {LOOPBACK}:{nginx.port}; checking both serve the same bytes ...")
                checks["served_bytes"] = spot_check(urls, source)
                script = tmp / "ranges.lua"
                script.write_text(WRK_SCRIPT)
                for mode in ("random", "sequential"):
                    for turn in range(MEASURED_TURNS + 1):
                        for server in ("nginx", "matinee"):
                            run = run_wrk(
                                script,
                                urls[server],
                                server=server,
                                mode=mode,
                                turn=turn,
                                size=source.size,
                                readers=args.readers,
                                seconds=WARMUP_SECONDS if turn == 0 else args.seconds,
                                server_pid=pids[server],
                            )
                            loads.append(run)
                            log("  " + describe_load(run))
                checks["load_responses"] = all(r.ok for r in loads)
                nginx.stop()
                nginx = None
                matinee.delete(ready.job_id)  # disk: INN2's spool + one copy at a time

                log(f"progressive playback, {args.rounds} rounds ...")
                for i in range(1, args.rounds + 1):
                    r = play_round(i, matinee, nzb, source, calibrated_bps)
                    rounds.append(r)
                    log("  " + describe_round(r))
                checks["first_mib_bytes"] = all(r.first_mib_ok for r in rounds)
                checks["range_bytes"] = all(p.ok is not False for r in rounds for p in r.probes)
            except BenchError:
                if matinee is not None:
                    log("matinee's log ends with:\n" + matinee.log_tail())
                raise
            finally:
                if nginx is not None:
                    nginx.stop()
                if matinee is not None:
                    matinee.stop()
                if inn2 is not None:
                    inn2.stop()
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    except BenchError as exc:
        log(f"error: {exc}")
        return 2

    report(args, rounds, loads, checks, extra, time.monotonic() - started)
    return 0 if all(checks.values()) else 1


def spot_check(urls: dict[str, str], source: Source) -> bool:
    """A few ranges of each server, compared with the source (also the last bytes)."""
    rng = random.Random()
    spans = [(0, RANDOM_CHUNK), (source.size - 3 * MIB - 17, 3 * MIB + 17)]
    spans += [(rng.randrange(source.size - RANDOM_CHUNK), RANDOM_CHUNK) for _ in range(4)]
    ok = True
    for server, url in urls.items():
        parts = urlsplit(url)
        client = Http(int(parts.port or 80))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            for start, length in spans:
                if not check_range(client.read_range(path, start, length), source, start, length):
                    log(f"  {server}: bytes {start}+{length} differ from the source")
                    ok = False
        finally:
            client.close()
    return ok


def describe_round(r: Round) -> str:
    probes = " ".join(
        f"{p.fraction * 100:.0f}%"
        + (f"(<{min(100, p.frontier / r.size * 100):.0f}%)" if p.ttfb is not None else "")
        + ":"
        + (f"{p.ttfb * 1000:.0f}ms" if p.ttfb is not None else "skip")
        for p in r.probes
    )
    ok = "ok" if r.ok else "BYTES WRONG"
    return (
        f"round {r.index}: first MiB {r.first_mib_seconds:.3f} s (playable seen "
        f"{r.playable_seconds:.3f} s, {r.polls} polls); range TTFB at offset(download "
        f"frontier) {probes or '-'}  {ok}{'  ' + r.note if r.note else ''}"
    )


def describe_load(run: LoadRun) -> str:
    warm = "warm-up " if run.turn == 0 else ""
    errors = ", ".join(f"{k} {v}" for k, v in run.errors.items() if v) or "no errors"
    return (
        f"{warm}{run.server:8s}{run.mode:11s}{run.mb_per_s:8.0f} MB/s  {run.requests:6d} req  "
        f"p50 {run.latency_p50_ms:7.1f} ms p99 {run.latency_p99_ms:7.1f} ms  "
        f"server cpu {run.server_cpu_s:5.2f} s  wrk cpu {run.wrk_cpu_s:5.2f} s  {errors}"
    )


def report(
    args: argparse.Namespace,
    rounds: list[Round],
    loads: list[LoadRun],
    checks: dict[str, bool],
    extra: dict[str, Any],
    elapsed: float,
) -> None:
    size = args.size_mb * MIB
    first = med([r.first_mib_seconds for r in rounds])
    ttfbs = [p.ttfb for r in rounds for p in r.probes if p.ttfb is not None]
    ttfb = med(ttfbs)
    skipped = sum(1 for r in rounds for p in r.probes if p.ttfb is None)
    early = [r.index for r in rounds if r.note]
    phase_names = ("post_answered", "queued", "downloading", "playable", "stream_200_seen")
    phase_medians = {k: med([r.phases[k] for r in rounds if k in r.phases]) for k in phase_names}
    phase_medians["first_mib_received"] = first
    load: dict[str, dict[str, Any]] = {}
    for mode in ("random", "sequential"):
        entry: dict[str, Any] = {}
        for server in ("nginx", "matinee"):
            runs = [x for x in loads if x.mode == mode and x.server == server and x.turn > 0]
            entry[server] = {
                "median_mb_per_s": med([x.mb_per_s for x in runs], 1),
                "runs_mb_per_s": [round(x.mb_per_s, 1) for x in runs],
                "median_server_cpu_s_per_gb": med(
                    [x.server_cpu_s / (x.mb_per_s * x.seconds / 1e3) for x in runs if x.mb_per_s],
                    3,
                ),
                "median_latency_p50_ms": med([x.latency_p50_ms for x in runs], 1),
                "median_latency_p99_ms": med([x.latency_p99_ms for x in runs], 1),
            }
        n, m = entry["nginx"]["median_mb_per_s"], entry["matinee"]["median_mb_per_s"]
        entry["ratio_matinee_nginx"] = round(m / n, 3) if n and m else None
        load[mode] = entry

    print()
    print(
        f"{args.size_mb} MiB ({size / 1e9:.2f} GB) post, {args.connections} NNTP connections, "
        f"{len(rounds)} rounds; {args.readers} readers x {args.seconds} s, "
        f"{MEASURED_TURNS} runs per server and mode, alternating"
    )
    print(f"{'':44s}{'median':>10s}  {'rounds':<30s}target")
    per_round = " ".join(f"{r.first_mib_seconds:.2f}" for r in rounds)
    print(
        f"{'POST /jobs -> first MiB received':44s}{fmt(first):>10s}  {per_round:<30s}"
        f"<= {TARGET_FIRST_MIB} s: {verdict(first, TARGET_FIRST_MIB)}"
    )
    print(
        f"{'TTFB, range not yet downloaded':44s}{fmt(ttfb):>10s}  "
        f"{f'{len(ttfbs)} ranges, {skipped} skipped':<30s}"
        f"<= {TARGET_TTFB} s: {verdict(ttfb, TARGET_TTFB)}"
    )
    print("  before the first MiB (median seconds after the POST was sent):")
    for k in (*phase_names, "first_mib_received"):
        print(f"    {k:40s}{fmt(phase_medians[k]):>10s}")
    if early:
        print(
            f"  rounds {early}: the download was done before the ranges could be asked; "
            "use a bigger --size-mb"
        )
    print(f"{'range serving, finished file':44s}{'nginx':>10s}{'Matinee':>10s}{'ratio':>8s}")
    for mode, label in (("random", "random 4 MiB"), ("sequential", "sequential 64 MiB")):
        e = load.get(mode, {})
        n = e.get("nginx", {}).get("median_mb_per_s")
        m = e.get("matinee", {}).get("median_mb_per_s")
        ratio = e.get("ratio_matinee_nginx")
        print(
            f"  {label + ', MB/s (median)':42s}{fmt(n, '.0f', ''):>10s}{fmt(m, '.0f', ''):>10s}"
            f"{fmt(ratio, '.2f', ''):>8s}  >= {TARGET_RATIO}: "
            f"{verdict(ratio, TARGET_RATIO, at_least=True)}"
        )
    failed = [k for k, v in checks.items() if not v]
    print("byte checks: " + ("all passed" if not failed else "FAILED: " + ", ".join(failed)))
    print(
        json.dumps(
            {
                "size_mib": args.size_mb,
                "connections": args.connections,
                "rounds": len(rounds),
                "readers": args.readers,
                "seconds": args.seconds,
                "median_first_mib_s": first,
                "median_unfetched_range_ttfb_s": ttfb,
                "unfetched_ranges_measured": len(ttfbs),
                "unfetched_ranges_skipped": skipped,
                "rounds_finished_early": early,
                "phase_medians_s": phase_medians,
                "targets": {
                    "first_mib_s": TARGET_FIRST_MIB,
                    "ttfb_s": TARGET_TTFB,
                    "ratio": TARGET_RATIO,
                },
                "load": load,
                "checks": checks,
                "all_ok": not failed,
                **extra,
                "elapsed_seconds": round(elapsed, 1),
                "round_details": [
                    {
                        "round": r.index,
                        "first_mib_s": round(r.first_mib_seconds, 3),
                        "first_mib_ttfb_s": round(r.first_mib_ttfb, 4),
                        "polls": r.polls,
                        "phases_s": r.phases,
                        "job_id": r.job_id,
                        "status_after_first_mib": r.status_after_first_mib,
                        "progress_after_first_mib": r.progress_after_first_mib,
                        "probes": [
                            {
                                "fraction": round(p.fraction, 4),
                                "job_progress": p.job_progress,
                                "frontier_fraction": round(min(1.0, p.frontier / r.size), 4),
                                "ttfb_s": None if p.ttfb is None else round(p.ttfb, 4),
                                "seconds": None if p.seconds is None else round(p.seconds, 4),
                                "ok": p.ok,
                                "skipped": p.skipped,
                            }
                            for p in r.probes
                        ],
                        "note": r.note,
                    }
                    for r in rounds
                ],
                "load_runs": [
                    {
                        "server": x.server,
                        "mode": x.mode,
                        "turn": x.turn,
                        "mb_per_s": round(x.mb_per_s, 1),
                        "requests": x.requests,
                        "errors": x.errors,
                        "server_cpu_s": round(x.server_cpu_s, 2),
                        "wrk_cpu_s": round(x.wrk_cpu_s, 2),
                    }
                    for x in loads
                ],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
