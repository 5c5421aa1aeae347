"""What the benchmarks share: a private INN2 and a poster (both from tests/support, run as
subprocesses: bench/ never imports tests/), process and /proc helpers, a temp dir that is
always removed, and signal handling that turns Ctrl-C and SIGTERM into a clean-up.

The scripts in bench/ run as `python bench/NAME.py`, so this module is imported as `common`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
CHUNK = 8 * MIB
START_TIMEOUT = 60.0
POST_CONNECTIONS = 4


class BenchError(RuntimeError):
    """The benchmark could not run (a tool failed to start, a run hung)."""


@dataclass
class Post:
    """A file posted to INN2: its NZB, name, size and digest (the file itself is gone)."""

    nzb: Path
    name: str
    size: int
    sha256: str
    post_mb_per_s: float


# -- small helpers ------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def write_random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path`; their SHA-256."""
    h = hashlib.sha256()
    left = size
    with path.open("wb") as f:
        while left:
            chunk = os.urandom(min(CHUNK, left))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def proc_cpu_times(pid: int, *, children: bool = False) -> tuple[float, float]:
    """(user, system) CPU seconds of a live process (all its threads); with `children`,
    including its reaped children's."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    user, system = int(fields[11]), int(fields[12])
    if children:
        user += int(fields[13])
        system += int(fields[14])
    return user / CLK_TCK, system / CLK_TCK


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def tree_cpu_seconds(root: int) -> float:
    """CPU of `root` and all its live descendants, including the children they reaped.

    Children that come and go between two samples (nnrpd forks one per connection) are
    counted once reaped by their parent, which lives on. Only this tree: other INN2
    instances on the machine (other people's tests) are not counted.
    """
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total = 0.0
    todo = [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += sum(proc_cpu_times(pid, children=True))
        todo.extend(children.get(pid, ()))
    return total


def read_json_line(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The first line of `proc`'s stdout that is a JSON object (waiting at most `timeout`)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no JSON line from {proc.args!r} within {timeout:.0f} s")
            if not sel.select(left):
                continue
            data = os.read(proc.stdout.fileno(), 65536)
            if not data:
                raise BenchError(f"{proc.args!r} exited ({proc.wait()}) before printing JSON")
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with contextlib.suppress(ValueError):
                    obj = json.loads(line)
                    if isinstance(obj, dict):
                        return obj
    finally:
        sel.close()


def last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict):
                return obj
    return {}


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float, group: bool) -> None:
    """SIGTERM, then SIGKILL after `timeout` (to the whole group when `group`)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait()


def stop_asking(proc: subprocess.Popen[bytes], ask: Callable[[], object], *, wait: float) -> None:
    """Ask `proc` to stop its own way (`ask`: a signal, an API call; its errors are its own
    to swallow) and give it `wait` s; then SIGTERM and SIGKILL to its whole group."""
    if proc.poll() is not None:
        return
    ask()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        stop_process(proc, timeout=5, group=True)


def rm(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Ctrl-C raises KeyboardInterrupt (even if started ignoring it); SIGTERM and SIGHUP
    raise SystemExit, so that every `finally` runs and nothing is left behind."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_exit)
    signal.signal(signal.SIGHUP, raise_exit)


@contextlib.contextmanager
def workspace(base: str | None) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="matinee-bench-", dir=base))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def matinee_exe() -> str:
    beside = Path(sys.executable).parent / "matinee"
    if beside.exists():
        return str(beside)
    found = shutil.which("matinee")
    if found is None:
        raise BenchError("cannot find the `matinee` command (pip install -e . into the venv)")
    return found


# -- INN2 ---------------------------------------------------------------------------------


class Inn2:
    """`python -m tests.support.inn2 serve` in its own session; SIGTERM stops it cleanly."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> None:
        self.directory.mkdir()
        stderr = (self.directory.parent / "inn2.stderr").open("wb")
        with stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.inn2", "serve", "--dir", str(self.directory)],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        self.info = read_json_line(self.proc, START_TIMEOUT)

    @property
    def port(self) -> int:
        return int(self.info["port"])

    def server_cpu(self) -> float:
        return tree_cpu_seconds(self.proc.pid) if self.proc is not None else 0.0

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        # Its watchdog takes the daemons down when the serving process dies.
        stop_asking(proc, proc.terminate, wait=45)
        if proc.stdout is not None:
            proc.stdout.close()

    def post_file(self, src: Path, nzb: Path) -> dict[str, Any]:
        """Post `src` straight to innd (`python -m tests.support.poster --innd`), write its
        NZB to `nzb`; the poster's JSON summary (segments, mb_per_s, ...)."""
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.support.poster",
                "--port",
                str(self.info["innd_port"]),
                "--innd",
                str(src),
                "--out",
                str(nzb),
                "--connections",
                str(POST_CONNECTIONS),
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=max(300.0, src.stat().st_size / 20e6),
        )
        out = last_json_line(res.stdout.decode(errors="replace"))
        if res.returncode != 0 or not nzb.exists():
            raise BenchError(
                f"posting failed ({res.returncode}): {res.stderr.decode(errors='replace')[-2000:]}"
            )
        return out

    def post(self, tmp: Path, size_mb: int) -> Post:
        """Post a fresh random file of `size_mb` MiB; keep its NZB, delete the file."""
        name = f"random-{size_mb}mib-{secrets.token_hex(4)}.bin"
        src = tmp / name
        nzb = tmp / f"{name}.nzb"
        size = size_mb * MIB
        log(f"writing {size_mb} MiB of random data ...")
        digest = write_random_file(src, size)
        log(f"posting {name} to innd ({POST_CONNECTIONS} connections) ...")
        try:
            out = self.post_file(src, nzb)
        finally:
            src.unlink(missing_ok=True)
        mbps = float(out.get("mb_per_s") or 0.0)
        log(f"  posted {out.get('segments')} articles at {mbps:.0f} MB/s")
        return Post(nzb=nzb, name=name, size=size, sha256=digest, post_mb_per_s=mbps)
