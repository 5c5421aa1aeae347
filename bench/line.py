"""Line benchmark: Matinee beside NZBGet and SABnzbd through an emulated household line.

The line in a box is the shaping proxy of tests/support/wire.py, run as a program
(`python -m tests.support.wire serve`): the tests need it in-process to count what crosses
it, and bench/ never imports tests/, so it lives there and this script starts it, as it
starts INN2. Profiles (one-way delay = RTT / 2; caps on what the server sends):

    profile   RTT     total        per connection   NNTP
    fibre     10 ms   500 Mbit/s   200 Mbit/s       plain
    cable     40 ms   200 Mbit/s   100 Mbit/s       plain
    slow      60 ms    25 Mbit/s   -                plain
    tls       the cable line to INN2's TLS port (implicit TLS, certificates verified)

Per profile, in one temp dir removed at the end (also on Ctrl-C):

1. Download of one post (`--size-mb`, random bytes) at each `--connections` count by
   Matinee (`matinee download`), NZBGet (Debian's, driven as bench/download.py drives it)
   and SABnzbd 5.0.1 (../shared/peers, unpacked once into bench/out/sabnzbd-5.0.1 with its
   own venv from PyPI; download only, pp=0; its defaults otherwise: 2 requests pipelined
   per connection, 1 GB article cache). Wall time from handing over the NZB to the file
   complete, CPU of the downloader's process, each result checked by SHA-256. Tools take
   turns; `--runs` each.
2. `matinee serve` on the same line (8 connections, two jobs at a time):
   * first MiB: from sending POST /jobs (polling /stream every 20 ms) to the last byte of
     the movie's first MiB: connection set-up, login and all;
   * first byte: while that job downloads at full speed, 256 KiB ranges at points not
     downloaded yet (95 % down to 60 % of the film), one at a time, a second apart: from
     sending each request to its first body byte;
   * seek: a player plays from a far point, reading at 40 % of the line's rate for a few
     seconds, then seeks (drops the connection, asks for another far point), five times:
     the time to the first byte of each seek;
   * with another job: the first-byte ranges again while a second job, started first,
     downloads at full speed.
3. Without caps (profile loopback): Matinee through the proxy and directly, for the proxy's
   own throughput.

Targets (issue 13): download >= 1.0 x the better peer and >= 95 % of the line's cap where
the line is the limit; first MiB <= 1.0 s on cable; first byte median <= 2 x RTT + 0.3 s;
seek on slow with a film at 40 % of the line <= 1.5 s. They are reported, not asserted: the
exit status is non-zero only when a download was incomplete or a range held wrong bytes.

    .venv/bin/python bench/line.py [--quick] [--profiles loopback,fibre,cable,slow,tls]
        [--connections 8,30] [--size-mb 2048] [--runs 1] [--loopback-runs 3]
        [--baseline-exe PATH] [--baseline-profiles loopback] [--latency-tools matinee]

Profile `loopback` (not in `--quick`) downloads straight from INN2, no proxy: the engine's
own speed beside the peers'. `--quick` (a few minutes): 512 MiB, 8 connections, downloads on
fibre and cable only, three ranges and three seeks per profile. `--baseline-exe` adds
another `matinee` (say, the engine before this change) as a tool: its downloads on
`--baseline-profiles`, its ranges and seeks where `--latency-tools` names it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import (
    LOOPBACK,
    MIB,
    REPO,
    START_TIMEOUT,
    BenchError,
    Inn2,
    Post,
    free_port,
    install_signal_handlers,
    log,
    matinee_exe,
    proc_cpu_times,
    proc_status_kib,
    read_json_line,
    rm,
    sha256_file,
    stop_asking,
    workspace,
)
from download import NZBGET, NzbGet, Run, matinee_download
from playback import Http, Matinee, Source, check_range

PEERS = REPO.parent / "shared" / "peers"
SAB_TARBALL = PEERS / "sabnzbd-5.0.1.tar.gz"
SAB_HOME = REPO / "bench" / "out" / "sabnzbd-5.0.1"
UNRAR = Path("/usr/bin/unrar")  # SABnzbd refuses to download without one (unrar-free does)
POLL = 0.05  # seconds between history polls of the peers
STREAM_POLL = 0.02
FIRST_BYTES = MIB
RANGE_LENGTH = 256 * 1024
RANGE_FRACTIONS = (0.95, 0.88, 0.81, 0.74, 0.67, 0.60)
SEEK_FRACTIONS = (0.93, 0.85, 0.77, 0.69, 0.61)
FILM_SHARE = 0.4  # the film's bit rate, as a share of the line's
PLAY_SECONDS = 4.0
RANGE_SPACING = 1.0  # seconds between ranges: the download is back at full speed by then
FRONTIER_MARGIN = 48 * MIB  # ranges this close above the download's frontier are skipped
OTHER_HEAD_START = 2.0  # seconds the other job downloads alone
PEER_TOOLS = ("nzbget", "sabnzbd")

# profile name -> (the proxy's line, TLS); loopback: no proxy, downloads only
PROFILES: dict[str, tuple[str, bool]] = {
    "loopback": ("", False),
    "fibre": ("fibre", False),
    "cable": ("cable", False),
    "slow": ("slow", False),
    "tls": ("cable", True),
}


# -- the line -----------------------------------------------------------------------------


class LineProxy:
    """`python -m tests.support.wire serve` in front of one INN2 port."""

    def __init__(self, directory: Path, upstream_port: int, line: str) -> None:
        self.directory = directory
        self.upstream_port = upstream_port
        self.line = line
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> LineProxy:
        self.directory.mkdir(exist_ok=True)
        with (self.directory / f"wire-{self.line}.stderr").open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.wire",
                    "serve",
                    "--upstream",
                    f"{LOOPBACK}:{self.upstream_port}",
                    "--profile",
                    self.line,
                ],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        self.info = read_json_line(self.proc, START_TIMEOUT)
        return self

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def rtt(self) -> float:
        return float(self.info["rtt"])

    @property
    def rate(self) -> float | None:
        rate = self.info.get("rate")
        return None if rate is None else float(rate)

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        stop_asking(proc, proc.terminate, wait=10)
        if proc.stdout is not None:
            proc.stdout.close()


class DirectLine(LineProxy):
    """No proxy at all: the tools talk to INN2 on loopback (the engine's own speed)."""

    def start(self) -> LineProxy:
        self.info = {"port": self.upstream_port, "rtt": 0.0, "rate": None, "line": "loopback"}
        return self

    def stop(self) -> None:
        pass


# -- SABnzbd ------------------------------------------------------------------------------


def build_sabnzbd() -> Path:
    """SABnzbd 5.0.1 unpacked with its own venv under bench/out (once); its python."""
    python = SAB_HOME / "venv" / "bin" / "python"
    stamp = SAB_HOME / ".installed"
    if stamp.exists():
        return python
    if not SAB_TARBALL.is_file():
        raise BenchError(f"{SAB_TARBALL} is missing (the peers live beside the repository)")
    if not UNRAR.exists():
        raise BenchError(f"{UNRAR} is missing: SABnzbd will not download without it (unrar-free)")
    log(f"building SABnzbd 5.0.1 in {SAB_HOME} (once) ...")
    rm(SAB_HOME)
    SAB_HOME.mkdir(parents=True)
    with tarfile.open(SAB_TARBALL) as tar:
        tar.extractall(SAB_HOME, filter="data")
    subprocess.run([sys.executable, "-m", "venv", str(SAB_HOME / "venv")], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "-r", str(SAB_HOME / "requirements.txt")]
    res = subprocess.run(pip, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BenchError(f"installing SABnzbd's requirements failed: {res.stderr[-2000:]}")
    stamp.touch()
    return python


class Sabnzbd:
    """SABnzbd 5.0.1 headless with a private ini, driven over its API."""

    def __init__(
        self,
        directory: Path,
        python: Path,
        *,
        nntp_port: int,
        connections: int,
        tls: bool,
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.python = python
        self.nntp_port = nntp_port
        self.connections = connections
        self.tls = tls
        self.env = env
        self.port = free_port()
        self.key = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        d = self.directory
        d.mkdir()
        ini = d / "sabnzbd.ini"
        ini.write_text(
            "__version__ = 19\n__encoding__ = utf-8\n[misc]\n"
            f"host = {LOOPBACK}\nport = {self.port}\n"
            f"api_key = {self.key}\nnzb_key = {secrets.token_hex(16)}\n"
            f"download_dir = {d / 'incomplete'}\ncomplete_dir = {d / 'complete'}\n"
            f"admin_dir = {d / 'admin'}\nlog_dir = {d / 'logs'}\n"
            "auto_browser = 0\ncheck_new_rel = 0\nenable_https = 0\nhtml_login = 0\n"
            "[servers]\n[[inn2]]\nname = inn2\ndisplayname = inn2\n"
            f"host = {LOOPBACK}\nport = {self.nntp_port}\n"
            f"connections = {self.connections}\nssl = {1 if self.tls else 0}\nenable = 1\n"
        )
        ini.chmod(0o600)
        with (d / "sabnzbd.stdout").open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    str(self.python),
                    "-OO",
                    str(SAB_HOME / "SABnzbd.py"),
                    "-f",
                    str(ini),
                    "-s",
                    f"{LOOPBACK}:{self.port}",
                    "-b",
                    "0",
                ],
                cwd=d,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if self.env is None else {**os.environ, **self.env},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"SABnzbd exited ({self.proc.returncode}); see {d}")
            with contextlib.suppress(OSError, BenchError, ValueError):
                version = self.api("version")["version"]
                break
            if time.monotonic() > deadline:
                raise BenchError("SABnzbd's API did not answer")
            time.sleep(0.2)
        log(f"  SABnzbd {version} on :{self.port} ({self.connections} connections)")

    def api(self, mode: str, **params: str) -> Any:
        fields = {"mode": mode, "apikey": self.key, "output": "json", **params}
        query = urllib.parse.urlencode(fields)
        url = f"http://{LOOPBACK}:{self.port}/api?{query}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            reply = json.loads(resp.read())
        if isinstance(reply, dict) and reply.get("status") is False:
            raise BenchError(f"SABnzbd {mode}: {reply.get('error')}")
        return reply

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def download(
        self, post: Post, run: int, server_cpu: Any, *, timeout: float | None = None
    ) -> Run:
        nzb = self.directory / f"bench-{run}-{secrets.token_hex(4)}.nzb"
        shutil.copyfile(post.nzb, nzb)
        timeout = timeout or max(300.0, post.size / 1e6)
        user0, sys0 = proc_cpu_times(self.pid)
        srv0 = server_cpu()
        t0 = time.perf_counter()
        added = self.api("addlocalfile", name=str(nzb), pp="0")
        ids = added.get("nzo_ids") or []
        if not ids:
            raise BenchError(f"SABnzbd refused the NZB: {added}")
        slot: dict[str, Any] | None = None
        while slot is None:
            if time.perf_counter() - t0 > timeout:
                raise BenchError(f"SABnzbd did not finish within {timeout:.0f} s")
            time.sleep(POLL)
            for item in self.api("history", limit="10")["history"]["slots"]:
                if item.get("nzo_id") == ids[0] and item.get("status") in ("Completed", "Failed"):
                    slot = item
        seconds = time.perf_counter() - t0
        user1, sys1 = proc_cpu_times(self.pid)
        srv = server_cpu() - srv0
        # Where it put the file: "storage" names it (or its folder), or is still empty;
        # a single file may be renamed after the job.
        folder = self.directory / "complete" / str(slot.get("name") or "")
        storage = Path(str(slot.get("storage") or folder))
        found = [p for p in (storage, storage / post.name, folder / post.name) if p.is_file()]
        found += sorted(folder.glob("*")) if folder.is_dir() else []
        ok = slot.get("status") == "Completed" and bool(found) and _verify(found[0], post)
        with contextlib.suppress(BenchError, OSError):
            self.api("history", name="delete", value=ids[0], del_files="1")
        rm(folder)
        nzb.unlink(missing_ok=True)
        return Run(
            tool="sabnzbd",
            size=post.size,
            seconds=seconds,
            cpu_seconds=(user1 - user0) + (sys1 - sys0),
            server_cpu_seconds=srv,
            peak_rss_kib=proc_status_kib(self.pid, "VmHWM"),
            ok=ok,
            detail={"status": slot.get("status"), "user_s": user1 - user0, "sys_s": sys1 - sys0},
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        stop_asking(proc, self._ask_shutdown, wait=20)

    def _ask_shutdown(self) -> None:
        # It may close the connection before its answer is complete.
        with contextlib.suppress(OSError, BenchError, ValueError, http.client.HTTPException):
            self.api("shutdown")


def _verify(path: Path, post: Post) -> bool:
    try:
        return path.stat().st_size == post.size and sha256_file(path) == post.sha256
    except OSError:
        return False


# -- the downloads ------------------------------------------------------------------------


@dataclass
class Setup:
    """How the tools reach the news server through one profile's line."""

    profile: str
    proxy: LineProxy
    tls: bool
    cafile: str

    @property
    def env(self) -> dict[str, str] | None:
        # Python's ssl reads the CA from these. SABnzbd sets SSL_CERT_FILE to certifi's
        # bundle at start, so it finds INN2's certificate in a hashed directory instead.
        if not self.tls:
            return None
        return {"SSL_CERT_FILE": self.cafile, "SSL_CERT_DIR": cert_dir(self.cafile)}

    @property
    def url(self) -> str:
        return f"{'nntps' if self.tls else 'nntp'}://{LOOPBACK}:{self.proxy.port}"

    @property
    def nzbget_tls(self) -> dict[str, str]:
        if not self.tls:
            return {}
        # NZBGet checks the name, not an IP address, against the certificate (made for
        # localhost): it connects by that name, which resolves to the proxy's loopback.
        return {
            "Server1.Host": "localhost",
            "Server1.Encryption": "yes",
            "CertStore": self.cafile,
            "CertCheck": "yes",
        }


def cert_dir(cafile: str) -> str:
    """A directory holding ``cafile`` under its subject hash (``openssl rehash``), once."""
    directory = Path(cafile).parent / "hashed-certs"
    if not directory.exists():
        directory.mkdir()
        shutil.copy(cafile, directory / "inn2.pem")
        subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    return str(directory)


def download_runs(
    setup: Setup,
    connections: int,
    post: Post,
    tmp: Path,
    runs: int,
    tools: list[str],
    exes: dict[str, str],
    inn2: Inn2,
    sab_python: Path | None,
) -> list[Run]:
    out: list[Run] = []
    nzbget: NzbGet | None = None
    sab: Sabnzbd | None = None
    tag = f"{setup.profile}-{connections}"
    try:
        if "nzbget" in tools:
            nzbget = NzbGet(
                tmp / f"nzbget-{tag}",
                nntp_port=setup.proxy.port,
                connections=connections,
                extra=setup.nzbget_tls,
            )
            nzbget.start()
        if "sabnzbd" in tools and sab_python is not None:
            sab = Sabnzbd(
                tmp / f"sabnzbd-{tag}",
                sab_python,
                nntp_port=setup.proxy.port,
                connections=connections,
                tls=setup.tls,
                env=setup.env,
            )
            sab.start()
        # A peer that has not finished at a quarter of the line's rate has stalled.
        timeout = 300.0 + post.size / (0.25 * (setup.proxy.rate or 100e6))
        for i in range(runs):
            order = tools[i % len(tools) :] + tools[: i % len(tools)]  # take turns
            for tool in order:
                run_id = len(out) + 100 * connections
                try:
                    r = one_download(
                        tool,
                        setup,
                        connections,
                        post,
                        tmp,
                        run_id,
                        exes,
                        inn2,
                        nzbget,
                        sab,
                        timeout,
                    )
                except BenchError as exc:
                    log(f"  {setup.profile:6s} {connections:2d} conn  {tool}: FAILED ({exc})")
                    r = Run(
                        tool, post.size, timeout, 0.0, 0.0, 0, ok=False, detail={"error": str(exc)}
                    )
                if r is None:
                    continue
                r.detail["profile"] = setup.profile
                r.detail["connections"] = connections
                out.append(r)
                log(f"  {setup.profile:6s} {connections:2d} conn  {describe_run(r, setup.proxy)}")
    finally:
        if nzbget is not None:
            nzbget.stop()
        if sab is not None:
            sab.stop()
    return out


def one_download(
    tool: str,
    setup: Setup,
    connections: int,
    post: Post,
    tmp: Path,
    run_id: int,
    exes: dict[str, str],
    inn2: Inn2,
    nzbget: NzbGet | None,
    sab: Sabnzbd | None,
    timeout: float,
) -> Run | None:
    if tool in exes:
        return matinee_download(
            exes[tool],
            post,
            tmp,
            run_id,
            nntp_port=setup.proxy.port,
            connections=connections,
            server_cpu=inn2.server_cpu,
            url=setup.url,
            env=setup.env,
            tool=tool,
        )
    if tool == "nzbget" and nzbget is not None:
        return nzbget.download(post, run_id, inn2.server_cpu, timeout=timeout)
    if tool == "sabnzbd" and sab is not None:
        return sab.download(post, run_id, inn2.server_cpu, timeout=timeout)
    return None


def describe_run(r: Run, proxy: LineProxy) -> str:
    share = f"{r.size / r.seconds / proxy.rate:5.0%} of the line" if proxy.rate else ""
    return (
        f"{r.tool:15s} {r.seconds:7.1f} s {r.mb_per_s:7.1f} MB/s {share}  "
        f"cpu {r.cpu_per_gb:5.2f} s/GB  {'ok' if r.ok else 'FAILED'}"
    )


# -- matinee serve on the line ------------------------------------------------------------


@dataclass
class Latency:
    """One `matinee serve` on one profile's line."""

    tool: str
    first_mib: list[float] = field(default_factory=list)
    first_byte: list[float] = field(default_factory=list)
    seek: list[float] = field(default_factory=list)
    with_other: list[float] = field(default_factory=list)
    first_mib_with_other: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bad_bytes: int = 0


def wait_playable(matinee: Matinee, job_id: str, t0: float) -> dict[str, Any]:
    while True:
        info = matinee.stream(job_id)
        if info is not None:
            return info
        if time.perf_counter() - t0 > 120:
            raise BenchError(f"{job_id} did not become playable within 120 s")
        time.sleep(STREAM_POLL)


def first_mib(matinee: Matinee, nzb: Path, source: Source, lat: Latency) -> tuple[str, str, float]:
    """Submit, wait for /stream, read the first MiB: (job id, media URL, seconds)."""
    media = Http(matinee.port)
    try:
        sub = matinee.submit(nzb)
        info = wait_playable(matinee, sub.job_id, sub.sent)
        got = media.read_range(str(info["url"]), 0, FIRST_BYTES)
        seconds = time.perf_counter() - sub.sent
        if not check_range(got, source, 0, FIRST_BYTES):
            lat.bad_bytes += 1
        return sub.job_id, str(info["url"]), seconds
    finally:
        media.close()


def frontier(matinee: Matinee, job_id: str) -> tuple[int, str]:
    job = matinee.job(job_id)
    reach = int(job["bytes_done"] + float(job["speed_bps"] or 0) * 2 + FRONTIER_MARGIN)
    return reach, str(job["status"])


def range_probes(
    matinee: Matinee, job_id: str, url: str, source: Source, count: int, lat: Latency
) -> list[float]:
    """256 KiB ranges at points not downloaded yet, a second apart: first-byte times."""
    media = Http(matinee.port)
    out: list[float] = []
    try:
        for fraction in RANGE_FRACTIONS[:count]:
            offset = min(source.size - RANGE_LENGTH, int(source.size * fraction))
            reach, status = frontier(matinee, job_id)
            if status != "downloading" or offset < reach:
                lat.skipped.append(f"{fraction:.0%}: {status}, reached ~{reach // MIB} MiB")
                continue
            got = media.read_range(url, offset, RANGE_LENGTH)
            if not check_range(got, source, offset, RANGE_LENGTH):
                lat.bad_bytes += 1
            out.append(got.ttfb)
            time.sleep(RANGE_SPACING)
    finally:
        media.close()
    return out


def player_seeks(
    matinee: Matinee,
    job_id: str,
    url: str,
    source: Source,
    film_bps: float,
    count: int,
    lat: Latency,
) -> list[float]:
    """Play from far points at `film_bps`, seeking every PLAY_SECONDS: each seek's TTFB."""
    out: list[float] = []
    for fraction in SEEK_FRACTIONS[:count]:
        offset = int(source.size * fraction)
        reach, status = frontier(matinee, job_id)
        if status != "downloading" or offset < reach:
            lat.skipped.append(f"seek {fraction:.0%}: {status}, reached ~{reach // MIB} MiB")
            continue
        conn = http.client.HTTPConnection(LOOPBACK, matinee.port, timeout=60)
        try:
            t0 = time.perf_counter()
            conn.request("GET", url, headers={"Range": f"bytes={offset}-"})
            resp = conn.getresponse()
            first = resp.read(1)
            out.append(time.perf_counter() - t0)
            head = first + resp.read(64 * 1024 - 1)
            if resp.status != 206 or head != source.read(offset, len(head)):
                lat.bad_bytes += 1
            started, got = time.perf_counter(), len(head)
            while (elapsed := time.perf_counter() - started) < PLAY_SECONDS:
                ahead = got / film_bps - elapsed
                if ahead > 0:
                    time.sleep(min(ahead, PLAY_SECONDS - elapsed))
                    continue
                chunk = resp.read(64 * 1024)
                if not chunk:
                    break
                got += len(chunk)
        finally:
            conn.close()  # the seek: a browser drops the response it no longer wants
    return out


def serve_latency(
    setup: Setup,
    tmp: Path,
    exe: str,
    tool: str,
    film: tuple[Path, Source],
    other: Path,
    count: int,
) -> Latency:
    lat = Latency(tool)
    nzb, source = film
    matinee = Matinee(
        tmp / f"serve-{tool}-{setup.profile}",
        nntp_port=setup.proxy.port,
        connections=8,
        max_active=2,
        tls=setup.tls,
        env=setup.env,
        exe=exe,
    )
    rate = setup.proxy.rate or 1e9
    try:
        matinee.start()
        # First MiB, then ranges while that job downloads.
        job_id, url, seconds = first_mib(matinee, nzb, source, lat)
        lat.first_mib.append(seconds)
        time.sleep(RANGE_SPACING)
        lat.first_byte += range_probes(matinee, job_id, url, source, count, lat)
        matinee.delete(job_id)
        # A player at 40 % of the line, seeking.
        job_id, url, seconds = first_mib(matinee, nzb, source, lat)
        lat.first_mib.append(seconds)
        lat.seek += player_seeks(matinee, job_id, url, source, FILM_SHARE * rate, count, lat)
        matinee.delete(job_id)
        # Another job downloads at full speed; this one is watched.
        other_job = matinee.submit(other).job_id
        time.sleep(OTHER_HEAD_START)
        job_id, url, seconds = first_mib(matinee, nzb, source, lat)
        lat.first_mib_with_other.append(seconds)
        time.sleep(RANGE_SPACING)
        lat.with_other += range_probes(matinee, job_id, url, source, count, lat)
        matinee.delete(job_id)
        matinee.delete(other_job)
    finally:
        matinee.stop()
    for what, values in (
        ("first MiB", lat.first_mib),
        ("first byte", lat.first_byte),
        ("seek", lat.seek),
        ("with other", lat.with_other),
    ):
        log(f"  {setup.profile:6s} {tool:15s} {what:11s} {' '.join(f'{v:.3f}' for v in values)}")
    return lat


# -- the proxy's own speed ----------------------------------------------------------------


def proxy_check(tmp: Path, inn2: Inn2, post: Post, runs: int) -> dict[str, float | None]:
    """Matinee at 8 connections through the proxy without caps, and directly."""
    proxy = LineProxy(tmp, inn2.port, "loopback").start()
    try:
        direct: list[float] = []
        through: list[float] = []
        for i in range(runs):
            for port, into in ((inn2.port, direct), (proxy.port, through)):
                r = matinee_download(
                    matinee_exe(),
                    post,
                    tmp,
                    900 + 2 * i + (port == proxy.port),
                    nntp_port=port,
                    connections=8,
                    server_cpu=inn2.server_cpu,
                )
                if not r.ok:
                    raise BenchError("a download for the proxy check failed")
                into.append(r.mb_per_s)
        log(f"  proxy check: direct {direct} MB/s, through the proxy {through} MB/s")
        d, t = statistics.median(direct), statistics.median(through)
        return {"direct_mb_per_s": round(d, 1), "proxy_mb_per_s": round(t, 1)}
    finally:
        proxy.stop()


# -- report -------------------------------------------------------------------------------


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str = ".3f", unit: str = " s") -> str:
    if value is None:
        width = "".join(c for c in spec.split(".")[0] if c.isdigit())
        return f"{'n/a':>{width or 0}}"
    return f"{value:{spec}}{unit}"


def targets(profile: str, proxy: LineProxy) -> dict[str, float]:
    t = {"first_byte": 2 * proxy.rtt + 0.3}
    if profile == "cable":
        t["first_mib"] = 1.0
    if profile == "slow":
        t["seek"] = 1.5
    return t


def report_profile(
    profile: str,
    proxy: LineProxy,
    runs: list[Run],
    lats: list[Latency],
    connections: list[int],
) -> dict[str, Any]:
    rate = proxy.rate
    print(f"\n== {profile}: {proxy.info.get('line')}{' (TLS)' if PROFILES[profile][1] else ''}")
    out: dict[str, Any] = {"line": proxy.info, "downloads": {}, "latency": {}}
    if runs:
        tools = list(dict.fromkeys(r.tool for r in runs))
        heads = "".join(f"{n:>3d} conn: MB/s  line  CPU s/GB " for n in connections)
        print(f"{'download':16s}{heads}")
        for tool in tools:
            cells = ""
            for n in connections:
                mine = [r for r in runs if r.tool == tool and r.detail["connections"] == n]
                good = [r for r in mine if r.ok]  # a failed run has no speed to speak of
                mbps = med([r.mb_per_s for r in good])
                cpu = med([r.cpu_per_gb for r in good])
                share = mbps * 1e6 / rate if mbps is not None and rate else None
                out["downloads"].setdefault(tool, {})[n] = {
                    "mb_per_s": None if mbps is None else round(mbps, 2),
                    "line_share": None if share is None else round(share, 3),
                    "cpu_s_per_gb": None if cpu is None else round(cpu, 3),
                    "ok": all(r.ok for r in mine),
                }
                cells += f"{'':9s}{fmt(mbps, '6.1f', '')}{fmt(share, '6.0%', '')}"
                cells += f"{fmt(cpu, '10.2f', '')} "
            print(f"{tool:16s}{cells}")
        for n in connections:
            d = {tool: v[n] for tool, v in out["downloads"].items() if n in v}
            peers = [v["mb_per_s"] for t, v in d.items() if t in PEER_TOOLS and v["mb_per_s"]]
            mine = d.get("matinee", {}).get("mb_per_s")
            if peers and mine:
                ratio = mine / max(peers)
                out.setdefault("ratio_vs_better_peer", {})[n] = round(ratio, 3)
                print(f"Matinee / better peer at {n} connections: {ratio:.2f} (target >= 1.0)")
    for lat in lats:
        t = targets(profile, proxy)
        rows = {
            "first MiB after POST /jobs": (lat.first_mib, t.get("first_mib")),
            "range -> first byte, downloading": (lat.first_byte, t["first_byte"]),
            "seek, film at 40 % of the line": (lat.seek, t.get("seek", t["first_byte"])),
            "range -> first byte, other job": (lat.with_other, t["first_byte"]),
            "first MiB, other job": (lat.first_mib_with_other, t.get("first_mib")),
        }
        print(f"{lat.tool}:")
        for what, (values, target) in rows.items():
            m = med(values)
            verdict = ""
            if target is not None and m is not None:
                verdict = f"  target <= {target:.2f} s: {'met' if m <= target else 'MISSED'}"
            worst = fmt(max(values, default=None))
            print(f"  {what:34s} median {fmt(m)} (n={len(values)}, max {worst}){verdict}")
        if lat.skipped:
            print(f"  skipped: {'; '.join(lat.skipped)}")
        out["latency"][lat.tool] = {**asdict(lat), "targets": t}
    return out


# -- main ---------------------------------------------------------------------------------


def parse_list(text: str) -> list[str]:
    """Comma-separated names; "none" for none."""
    return [s.strip() for s in text.split(",") if s.strip() and s.strip() != "none"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Matinee, NZBGet and SABnzbd through a line.")
    parser.add_argument("--quick", action="store_true", help="a few minutes (see the docstring)")
    parser.add_argument("--profiles", type=parse_list, default=None)
    parser.add_argument("--connections", type=parse_list, default=None)
    parser.add_argument("--size-mb", type=int, default=None, help="the post, MiB")
    parser.add_argument("--runs", type=int, default=1, help="downloads per tool and setting")
    parser.add_argument("--loopback-runs", type=int, default=3, help="the same on loopback")
    parser.add_argument("--baseline-profiles", type=parse_list, default=["loopback"])
    parser.add_argument("--download-profiles", type=parse_list, default=None)
    parser.add_argument("--no-peers", action="store_true", help="Matinee alone")
    parser.add_argument("--no-proxy-check", action="store_true")
    parser.add_argument("--baseline-exe", default=None, help="another matinee, as one more tool")
    parser.add_argument(
        "--latency-tools", type=parse_list, default=None, help="matinee and/or matinee-before"
    )
    parser.add_argument("--tmp", default=None, help="where to make the temp dir")
    args = parser.parse_args(argv)
    quick = args.quick
    profiles = args.profiles or [p for p in PROFILES if p != "loopback" or not quick]
    connections = [int(n) for n in (args.connections or (["8"] if quick else ["8", "30"]))]
    size_mb = args.size_mb or (512 if quick else 2048)
    downloads_on = args.download_profiles
    if downloads_on is None:
        downloads_on = ["fibre", "cable"] if quick else profiles
    count = 3 if quick else 5
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        parser.error(f"unknown profiles {unknown}; known: {sorted(PROFILES)}")
    tools = ["matinee"] + ([] if args.no_peers else ["nzbget", "sabnzbd"])
    exes = {"matinee": matinee_exe()}
    if args.baseline_exe:
        exes["matinee-before"] = args.baseline_exe
        tools.append("matinee-before")
    latency_tools = set(exes if args.latency_tools is None else args.latency_tools)
    if "nzbget" in tools and not Path(NZBGET).exists():
        parser.error(f"{NZBGET} is missing (apt-get install nzbget)")

    install_signal_handlers()
    started = time.monotonic()
    results: dict[str, Any] = {"size_mib": size_mb, "connections": connections, "quick": quick}
    failed = False
    try:
        sab_python = build_sabnzbd() if "sabnzbd" in tools else None
        with workspace(args.tmp) as tmp:
            inn2 = Inn2(tmp / "inn2")
            try:
                log(f"temp dir {tmp}; starting INN2 ...")
                inn2.start()
                film_source = Source(size_mb * MIB)
                other_source = Source(size_mb * MIB)
                film = post_source(inn2, tmp, film_source, "Line.Bench.Film.2026.1080p.mkv")
                other = post_source(inn2, tmp, other_source, "Line.Bench.Other.2026.1080p.mkv")
                if not args.no_proxy_check:
                    results["proxy"] = proxy_check(tmp, inn2, film, 1 if quick else 2)
                for profile in profiles:
                    line, tls = PROFILES[profile]
                    port = int(inn2.info["tls_port"]) if tls else inn2.port
                    kind = DirectLine if profile == "loopback" else LineProxy
                    proxy = kind(tmp, port, line).start()
                    setup = Setup(profile, proxy, tls, str(inn2.info["cafile"]))
                    log(f"{profile}: {proxy.info['line']}{' over TLS' if tls else ''}")
                    try:
                        runs: list[Run] = []
                        if profile in downloads_on:
                            here = [
                                t
                                for t in tools
                                if t != "matinee-before" or profile in args.baseline_profiles
                            ]
                            times = args.loopback_runs if profile == "loopback" else args.runs
                            for n in connections:
                                runs += download_runs(
                                    setup, n, film, tmp, times, here, exes, inn2, sab_python
                                )
                        lats = [
                            serve_latency(
                                setup, tmp, exe, tool, (film.nzb, film_source), other.nzb, count
                            )
                            for tool, exe in exes.items()
                            if profile != "loopback" and tool in latency_tools
                        ]
                    finally:
                        proxy.stop()
                    failed = failed or not all(r.ok for r in runs)
                    failed = failed or any(lat.bad_bytes for lat in lats)
                    results[profile] = report_profile(profile, proxy, runs, lats, connections)
                    results[profile]["runs"] = [r.summary() for r in runs]
            finally:
                inn2.stop()
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    proxy = results.get("proxy", {})
    if proxy.get("direct_mb_per_s"):
        print(
            f"\nthe proxy without caps: {proxy['proxy_mb_per_s']} MB/s through it, "
            f"{proxy['direct_mb_per_s']} MB/s direct (Matinee, 8 connections)"
        )
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    results["all_ok"] = not failed
    print(json.dumps(results, default=str), flush=True)
    return 1 if failed else 0


def post_source(inn2: Inn2, tmp: Path, source: Source, name: str) -> Post:
    src = tmp / name
    nzb = tmp / f"{name}.nzb"
    log(f"writing and posting {name} ({source.size // MIB} MiB) ...")
    digest = source.write(src)
    try:
        out = inn2.post_file(src, nzb)
    finally:
        src.unlink(missing_ok=True)
    return Post(nzb, name, source.size, digest, float(out.get("mb_per_s") or 0.0))


if __name__ == "__main__":
    sys.exit(main())
