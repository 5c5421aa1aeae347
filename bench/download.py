"""Download benchmark: `matinee download` against NZBGet on the same NZB from the same INN2.

What it does, all in one temp dir that is removed at the end (also on Ctrl-C or failure):

1. starts a private INN2 (`python -m tests.support.inn2 serve`, a subprocess: bench/ never
   imports tests/), writes a random file of `--size-mb` MiB (random, so the yEnc escaping
   rate is realistic), posts it straight to innd (`python -m tests.support.poster --innd`),
   keeps the NZB and the file's SHA-256, and deletes the file (disk stays under ~5 GB);
2. starts Debian's NZBGet once as a server with a private config (Debian's
   /etc/nzbget.conf plus overrides for a pure download: same reader port and connection
   count, no TLS, DirectWrite, CRC check, no par check/rename, no unpack, no dupe or
   health check, no scripts), driven over JSON-RPC;
3. alternates NZBGet and Matinee runs (`--warmup` pairs first, dropped), each into an
   empty directory, verifying every result byte for byte (SHA-256) and deleting it:
   * NZBGet: wall time from `append` to the item being in the history with a SUCCESS
     status (polled every 20 ms), CPU from /proc/PID/stat (utime+stime) over that
     interval, peak RSS from VmHWM;
   * Matinee: wall time from spawning `matinee download` to its exit (Python start-up
     and NZB parsing included, which is conservative), CPU and peak RSS from wait4's
     rusage;
   and the CPU our INN2 (its whole process tree) spent meanwhile, for information;
4. with `--sizes 500,2048`, runs Matinee once per size for the peak-RSS target;
5. prints medians and ratios, then one JSON line with every number.

Units: sizes in MiB; throughput in MB/s (10^6 bytes/s of decoded data, as `matinee download`
reports it); CPU in seconds per GB (10^9 bytes). The exit status is non-zero only when a
download was incomplete or not byte-identical; the targets are reported, not asserted.

    .venv/bin/python bench/download.py [--size-mb 2048] [--runs 3] [--connections 8]
                                       [--warmup 1] [--sizes 500,2048]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import (
    LOOPBACK,
    MIB,
    START_TIMEOUT,
    BenchError,
    Inn2,
    Post,
    free_port,
    install_signal_handlers,
    last_json_line,
    log,
    matinee_exe,
    proc_cpu_times,
    proc_status_kib,
    rm,
    sha256_file,
    stop_asking,
    stop_process,
    workspace,
)

NZBGET = "/usr/bin/nzbget"
DEBIAN_NZBGET_CONF = Path("/etc/nzbget.conf")
POLL = 0.02  # seconds between NZBGet history polls


@dataclass
class Run:
    """One download by one tool."""

    tool: str
    size: int  # bytes of the source file
    seconds: float  # wall time, measured by this script
    cpu_seconds: float  # the downloader's user+system CPU
    server_cpu_seconds: float  # our INN2 process tree's CPU, same interval
    peak_rss_kib: int  # the downloader's peak RSS (NZBGet: lifetime VmHWM so far)
    ok: bool  # complete and byte-identical
    warmup: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6

    @property
    def cpu_per_gb(self) -> float:
        return self.cpu_seconds / (self.size / 1e9)

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d["mb_per_s"] = round(self.mb_per_s, 1)
        d["cpu_s_per_gb"] = round(self.cpu_per_gb, 3)
        d["seconds"] = round(self.seconds, 3)
        d["cpu_seconds"] = round(self.cpu_seconds, 3)
        d["server_cpu_seconds"] = round(self.server_cpu_seconds, 3)
        return d


# -- NZBGet -------------------------------------------------------------------------------


def debian_nzbget_options() -> dict[str, str]:
    """Debian's shipped settings (`Key=Value` lines of /etc/nzbget.conf), in order."""
    options: dict[str, str] = {}
    if DEBIAN_NZBGET_CONF.is_file():
        for line in DEBIAN_NZBGET_CONF.read_text(errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                options[key.strip()] = value.strip()
    return options


class NzbGet:
    """One NZBGet server for the whole benchmark, driven over JSON-RPC."""

    def __init__(
        self,
        directory: Path,
        *,
        nntp_port: int,
        connections: int,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.extra = extra or {}
        self.directory = directory
        self.nntp_port = nntp_port
        self.connections = connections
        self.port = free_port()
        self.username = "nzbget"
        self.password = secrets.token_urlsafe(18)
        self.conf = directory / "nzbget.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self._rpc_id = 0
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        self._auth = f"Basic {token}"

    def write_config(self) -> dict[str, str]:
        d = self.directory
        overrides = {
            # Everything inside the temp dir; no web UI, no scripts.
            "MainDir": str(d),
            "DestDir": "${MainDir}/dst",
            "InterDir": "${MainDir}/inter",
            "NzbDir": "${MainDir}/nzb",
            "QueueDir": "${MainDir}/queue",
            "TempDir": "${MainDir}/tmp",
            "ScriptDir": "${MainDir}/scripts",
            "LockFile": "${MainDir}/nzbget.lock",
            "LogFile": "${MainDir}/nzbget.log",
            "WebDir": "",
            "ConfigTemplate": "",
            "ControlIP": LOOPBACK,
            "ControlPort": str(self.port),
            "ControlUsername": self.username,
            "ControlPassword": self.password,
            "RestrictedUsername": "",
            "RestrictedPassword": "",
            "AddUsername": "",
            "AddPassword": "",
            "SecureControl": "no",
            "UpdateCheck": "none",
            # The same server and connection count as Matinee, plain NNTP.
            "Server1.Active": "yes",
            "Server1.Name": "inn2",
            "Server1.Level": "0",
            "Server1.Optional": "no",
            "Server1.Host": LOOPBACK,
            "Server1.Port": str(self.nntp_port),
            "Server1.Username": "",
            "Server1.Password": "",
            "Server1.JoinGroup": "no",
            "Server1.Encryption": "no",
            "Server1.Connections": str(self.connections),
            "Server1.Retention": "0",
            # A pure download: decode, CRC-check, write in place; nothing afterwards.
            "DirectWrite": "yes",
            "CrcCheck": "yes",
            "ParCheck": "manual",
            "ParRename": "no",
            "RarRename": "no",
            "DirectRename": "no",
            "Unpack": "no",
            "DirectUnpack": "no",
            "DupeCheck": "no",
            "HealthCheck": "none",
            "ScriptOrder": "",
            "Extensions": "",
            "NzbDirInterval": "0",
            "DiskSpace": "0",
            "OutputMode": "loggable",
        }
        options = debian_nzbget_options()
        options.setdefault("ArticleCache", "0")  # Debian's default, kept as shipped
        options.update(overrides)
        options.update(self.extra)
        # Debian's categories are harmless (we add without one) but carry Unpack=yes.
        options = {k: v for k, v in options.items() if not k.startswith("Category")}
        self.conf.write_text("".join(f"{k}={v}\n" for k, v in options.items()))
        self.conf.chmod(0o600)
        return options

    def start(self) -> None:
        self.directory.mkdir()
        options = self.write_config()
        with (self.directory / "nzbget.stdout").open("wb") as out:
            self.proc = subprocess.Popen(
                [NZBGET, "-c", str(self.conf), "-s"],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"nzbget exited ({self.proc.returncode}); see its log")
            try:
                version = self.rpc("version")
                break
            except (OSError, BenchError):
                if time.monotonic() > deadline:
                    raise BenchError("nzbget's JSON-RPC did not answer") from None
                time.sleep(0.1)
        log(
            f"NZBGet {version} on :{self.port} (ArticleCache={options.get('ArticleCache')}, "
            f"WriteBuffer={options.get('WriteBuffer')}, DirectWrite={options.get('DirectWrite')}, "
            f"CrcCheck={options.get('CrcCheck')}"
            + "".join(
                f", {k}={v}"
                for k, v in self.extra.items()
                if k not in ("ArticleCache", "WriteBuffer", "DirectWrite", "CrcCheck")
            )
            + ")"
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rpc(self, method: str, *params: Any, timeout: float = 30.0) -> Any:
        self._rpc_id += 1
        body = json.dumps({"method": method, "params": list(params), "id": self._rpc_id})
        req = urllib.request.Request(
            f"http://{LOOPBACK}:{self.port}/jsonrpc",
            data=body.encode(),
            headers={"Authorization": self._auth, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
        if reply.get("error"):
            raise BenchError(f"nzbget {method}: {reply['error']}")
        return reply.get("result")

    def download(
        self, post: Post, run: int, server_cpu: Any, *, timeout: float | None = None
    ) -> Run:
        content = base64.b64encode(post.nzb.read_bytes()).decode()
        nzb_name = f"bench-{run}-{secrets.token_hex(4)}.nzb"
        timeout = timeout or max(120.0, post.size / 10e6)
        user0, sys0 = proc_cpu_times(self.pid)
        srv0 = server_cpu()
        t0 = time.perf_counter()
        # append(NZBFilename, Content, Category, Priority, AddToTop, AddPaused, DupeKey,
        #        DupeScore, DupeMode, PPParameters)
        nzb_id = self.rpc("append", nzb_name, content, "", 0, False, False, "", 0, "FORCE", [])
        if not isinstance(nzb_id, int) or nzb_id <= 0:
            raise BenchError(f"nzbget refused the NZB ({nzb_id!r})")
        entry: dict[str, Any] | None = None
        while entry is None:
            if time.perf_counter() - t0 > timeout:
                raise BenchError(f"nzbget did not finish within {timeout:.0f} s")
            time.sleep(POLL)
            for item in self.rpc("history", False):
                if item.get("NZBID") == nzb_id:
                    entry = item
                    break
        seconds = time.perf_counter() - t0
        user1, sys1 = proc_cpu_times(self.pid)
        srv = server_cpu() - srv0
        status = str(entry.get("Status", ""))
        dest = Path(str(entry.get("DestDir", "")))
        ok = status.startswith("SUCCESS") and self._verify(dest / post.name, post)
        detail = {
            "status": status,
            "own_download_seconds": entry.get("DownloadTimeSec"),
            "user_s": round(user1 - user0, 3),
            "sys_s": round(sys1 - sys0, 3),
            "vmrss_kib_after": proc_status_kib(self.pid, "VmRSS"),
        }
        # Leave nothing behind: the output, the history entry, the queue's copy of the NZB.
        if dest.is_relative_to(self.directory):
            rm(dest)
        self.rpc("editqueue", "HistoryFinalDelete", "", [nzb_id])
        return Run(
            tool="nzbget",
            size=post.size,
            seconds=seconds,
            cpu_seconds=(user1 - user0) + (sys1 - sys0),
            server_cpu_seconds=srv,
            peak_rss_kib=proc_status_kib(self.pid, "VmHWM"),
            ok=ok,
            detail=detail,
        )

    @staticmethod
    def _verify(path: Path, post: Post) -> bool:
        try:
            return path.stat().st_size == post.size and sha256_file(path) == post.sha256
        except FileNotFoundError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        stop_asking(proc, self._ask_shutdown, wait=15)

    def _ask_shutdown(self) -> None:
        with contextlib.suppress(OSError, BenchError, ValueError):
            self.rpc("shutdown", timeout=5)


# -- Matinee ------------------------------------------------------------------------------


def matinee_download(
    exe: str,
    post: Post,
    tmp: Path,
    run: int,
    *,
    nntp_port: int,
    connections: int,
    server_cpu: Any,
    url: str | None = None,
    env: dict[str, str] | None = None,
    tool: str = "matinee",
) -> Run:
    """`matinee download` of `post` from `url` (default: plain NNTP on `nntp_port`)."""
    out_dir = tmp / f"matinee-out-{run}"
    out_dir.mkdir()
    stdout_path = tmp / f"matinee-{run}.stdout"
    stderr_path = tmp / f"matinee-{run}.stderr"
    cmd = [
        exe,
        "download",
        str(post.nzb),
        "--out",
        str(out_dir),
        "--server",
        url or f"nntp://{LOOPBACK}:{nntp_port}",
        "--connections",
        str(connections),
    ]
    try:
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            srv0 = server_cpu()
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=None if env is None else {**os.environ, **env},
            )
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                stop_process(proc, timeout=5, group=False)
                raise
            seconds = time.perf_counter() - t0
            srv = server_cpu() - srv0
            proc.returncode = os.waitstatus_to_exitcode(status)
        result = last_json_line(stdout_path.read_text(errors="replace"))
        target = out_dir / post.name
        ok = (
            proc.returncode == 0
            and not result.get("missing_segments")
            and target.is_file()
            and target.stat().st_size == post.size
            and sha256_file(target) == post.sha256
        )
        if not ok:
            tail = stderr_path.read_text(errors="replace")[-1500:]
            log(f"  matinee run {run} failed (exit {proc.returncode}): {result}\n{tail}")
        return Run(
            tool=tool,
            size=post.size,
            seconds=seconds,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            server_cpu_seconds=srv,
            peak_rss_kib=int(usage.ru_maxrss),
            ok=ok,
            detail={
                "exit": proc.returncode,
                "user_s": round(usage.ru_utime, 3),
                "sys_s": round(usage.ru_stime, 3),
                "own_seconds": result.get("seconds"),
                "own_mb_per_s": result.get("mb_per_s"),
                "missing_segments": result.get("missing_segments"),
                "repaired": result.get("repaired"),
            },
        )
    finally:
        rm(out_dir)
        rm(stdout_path)
        rm(stderr_path)


# -- report -------------------------------------------------------------------------------


def med(values: list[float], digits: int) -> float | None:
    return round(statistics.median(values), digits) if values else None


def describe(run: Run) -> str:
    extra = ""
    if run.tool == "matinee" and run.detail.get("own_seconds"):
        extra = f"  (in-process {run.detail['own_seconds']:.2f} s)"
    if run.tool == "nzbget" and run.detail.get("status"):
        extra = f"  ({run.detail['status']})"
    return (
        f"{'warm-up ' if run.warmup else ''}{run.tool:8s} {run.seconds:7.2f} s "
        f"{run.mb_per_s:7.0f} MB/s  cpu {run.cpu_seconds:6.2f} s ({run.cpu_per_gb:5.2f} s/GB, "
        f"user {run.detail.get('user_s', 0):.2f} sys {run.detail.get('sys_s', 0):.2f})  "
        f"inn2 cpu {run.server_cpu_seconds:5.2f} s  rss {run.peak_rss_kib / 1024:6.1f} MiB  "
        f"{'ok' if run.ok else 'FAILED'}{extra}"
    )


def tool_stats(runs: list[Run]) -> dict[str, Any]:
    measured = [r for r in runs if not r.warmup]
    return {
        "runs": len(measured),
        "median_mb_per_s": med([r.mb_per_s for r in measured], 1),
        "median_cpu_s_per_gb": med([r.cpu_per_gb for r in measured], 3),
        "median_seconds": med([r.seconds for r in measured], 3),
        "median_user_s_per_gb": med(
            [r.detail.get("user_s", 0.0) / (r.size / 1e9) for r in measured], 3
        ),
        "median_sys_s_per_gb": med(
            [r.detail.get("sys_s", 0.0) / (r.size / 1e9) for r in measured], 3
        ),
        "median_inn2_cpu_s_per_gb": med(
            [r.server_cpu_seconds / (r.size / 1e9) for r in measured], 3
        ),
        "peak_rss_mib": round(max((r.peak_rss_kib for r in runs), default=0) / 1024, 1),
    }


# -- main ---------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of MiB sizes: {text!r}") from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def parse_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Download benchmark: matinee download vs NZBGet on one INN2.",
    )
    parser.add_argument("--size-mb", type=int, default=2048, help="post size in MiB")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per tool")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured pairs first")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[],
        help="comma-separated MiB sizes: one Matinee run each, for the peak-RSS target",
    )
    parser.add_argument("--tmp", default=None, help="where to make the temp dir")
    parser.add_argument(
        "--nzbget-option",
        type=parse_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an NZBGet option (sensitivity checks, e.g. ArticleCache=500)",
    )
    args = parser.parse_args(argv)
    args.nzbget_option = dict(args.nzbget_option)
    if args.size_mb <= 0 or args.runs < 0 or args.warmup < 0 or args.connections < 1:
        parser.error("sizes, runs and connections must be positive")
    if not Path(NZBGET).exists():
        parser.error(f"{NZBGET} is missing (apt-get install nzbget)")

    install_signal_handlers()
    exe = matinee_exe()
    inn2: Inn2 | None = None
    nzbget: NzbGet | None = None
    runs: list[Run] = []
    rss_runs: list[Run] = []
    posts: dict[int, Post] = {}
    started = time.monotonic()
    try:
        with workspace(args.tmp) as tmp:
            try:
                log(f"temp dir {tmp}; starting INN2 ...")
                inn2 = Inn2(tmp / "inn2")
                inn2.start()
                log(f"INN2 reader on {LOOPBACK}:{inn2.port}")
                server_cpu = inn2.server_cpu
                main_post = posts[args.size_mb] = inn2.post(tmp, args.size_mb)
                if args.runs or args.warmup:
                    nzbget = NzbGet(
                        tmp / "nzbget",
                        nntp_port=inn2.port,
                        connections=args.connections,
                        extra=args.nzbget_option,
                    )
                    nzbget.start()
                    for i in range(args.warmup + args.runs):
                        warm = i < args.warmup
                        pair = [
                            nzbget.download(main_post, i, server_cpu),
                            matinee_download(
                                exe,
                                main_post,
                                tmp,
                                i,
                                nntp_port=inn2.port,
                                connections=args.connections,
                                server_cpu=server_cpu,
                            ),
                        ]
                        for r in pair:
                            r.warmup = warm
                            runs.append(r)
                            log("  " + describe(r))
                    nzbget.stop()
                for size_mb in args.sizes:
                    if size_mb not in posts:
                        posts[size_mb] = inn2.post(tmp, size_mb)
                    r = matinee_download(
                        exe,
                        posts[size_mb],
                        tmp,
                        1000 + size_mb,
                        nntp_port=inn2.port,
                        connections=args.connections,
                        server_cpu=server_cpu,
                    )
                    rss_runs.append(r)
                    log(f"  rss check {size_mb} MiB: " + describe(r))
            finally:
                if nzbget is not None:
                    nzbget.stop()
                if inn2 is not None:
                    inn2.stop()
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    except BenchError as exc:
        log(f"error: {exc}")
        return 2

    report(args, runs, rss_runs, posts, time.monotonic() - started)
    return 0 if all(r.ok for r in runs + rss_runs) else 1


def report(
    args: argparse.Namespace,
    runs: list[Run],
    rss_runs: list[Run],
    posts: dict[int, Post],
    elapsed: float,
) -> None:
    stats = {
        tool: tool_stats([r for r in runs if r.tool == tool]) for tool in ("nzbget", "matinee")
    }
    n, m = stats["nzbget"], stats["matinee"]
    measured = bool(n["runs"] and m["runs"])
    throughput_ratio = m["median_mb_per_s"] / n["median_mb_per_s"] if measured else None
    cpu_ratio = m["median_cpu_s_per_gb"] / n["median_cpu_s_per_gb"] if measured else None
    size = args.size_mb * MIB
    print()
    print(
        f"{args.size_mb} MiB ({size / 1e9:.2f} GB) post, {args.connections} connections, "
        f"{args.runs} measured runs each (+{args.warmup} warm-up pair), alternating"
    )
    if measured:
        print(f"{'':10s}{'MB/s (median)':>15s}{'CPU s/GB (median)':>20s}{'peak RSS':>12s}")
        for tool, s in (("NZBGet", n), ("Matinee", m)):
            print(
                f"{tool:10s}{s['median_mb_per_s']:15.0f}{s['median_cpu_s_per_gb']:20.2f}"
                f"{s['peak_rss_mib']:9.1f} MiB"
            )
        assert throughput_ratio is not None and cpu_ratio is not None
        print(f"Matinee/NZBGet throughput  {throughput_ratio:.2f}  (target >= 1.0; ~1.4 = SABnzbd)")
        print(f"Matinee/NZBGet CPU per GB  {cpu_ratio:.2f}  (target <= 1.0)")
        print(
            f"INN2 CPU s/GB (median): while NZBGet {n['median_inn2_cpu_s_per_gb']:.2f}, "
            f"while Matinee {m['median_inn2_cpu_s_per_gb']:.2f}"
        )
    for r in rss_runs:
        rss = r.peak_rss_kib / 1024
        print(
            f"Matinee peak RSS, {r.size // MIB} MiB post: {rss:.1f} MiB "
            f"(target < 100 MB: {'met' if rss * MIB < 100e6 else 'MISSED'})"
        )
    failed = [r for r in runs + rss_runs if not r.ok]
    if failed:
        print(f"{len(failed)} download(s) incomplete or not byte-identical")
    print(
        json.dumps(
            {
                "size_mib": args.size_mb,
                "connections": args.connections,
                "runs": args.runs,
                "warmup_pairs": args.warmup,
                "nzbget_overrides": args.nzbget_option,
                "nzbget": n,
                "matinee": m,
                "ratio_throughput": None
                if throughput_ratio is None
                else round(throughput_ratio, 3),
                "ratio_cpu_per_gb": None if cpu_ratio is None else round(cpu_ratio, 3),
                "rss_check": [
                    {
                        "size_mib": r.size // MIB,
                        "peak_rss_mib": round(r.peak_rss_kib / 1024, 1),
                        "ok": r.ok,
                    }
                    for r in rss_runs
                ],
                "post_mb_per_s": {str(k): p.post_mb_per_s for k, p in posts.items()},
                "all_ok": not failed,
                "elapsed_seconds": round(elapsed, 1),
                "run_details": [r.summary() for r in runs + rss_runs],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
