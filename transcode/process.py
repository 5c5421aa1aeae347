"""Running ffmpeg and ffprobe: an asyncio child process that never outlives its caller.

Both pipes are drained concurrently (a child blocked on a full stderr pipe is the classic
hang), stderr is kept as a bounded tail for error messages, and the child is always
killed and reaped when its owner is cancelled, times out or fails. Failures raise
``ProcessError`` carrying argv, exit status and the stderr tail.

Also here: a parser for the ``key=value`` blocks that ``ffmpeg -progress pipe:1`` writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

DEFAULT_STDERR_TAIL = 16 * 1024  # bytes of stderr kept for error messages
DEFAULT_STDOUT_LIMIT = 32 * 1024 * 1024  # captured stdout beyond this is an error
READ_CHUNK = 64 * 1024
# After the child is gone its pipes reach EOF at once, unless a grandchild inherited them;
# this bounds how long cleanup waits for that before giving up on the readers.
PIPE_CLOSE_GRACE = 2.0

StdoutLineCallback = Callable[[bytes], object]  # the return value is ignored


class ProcessError(Exception):
    """A child process failed: it could not start, exited non-zero, was killed or timed out."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stderr_tail: str,
        *,
        reason: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.reason = reason
        super().__init__(self._message())

    @property
    def program(self) -> str:
        return os.path.basename(self.argv[0]) if self.argv else "process"

    @property
    def last_error_line(self) -> str | None:
        """The last non-empty stderr line: what ffmpeg/ffprobe say went wrong."""
        for line in reversed(self.stderr_tail.splitlines()):
            if line.strip():
                return line.strip()
        return None

    def _message(self) -> str:
        if self.reason is not None:
            what = self.reason
        elif self.returncode is None:
            what = "failed"
        elif self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            what = f"was killed by {name}"
        else:
            what = f"exited with status {self.returncode}"
        detail = self.last_error_line
        return f"{self.program} {what}: {detail}" if detail else f"{self.program} {what}"


class ProcessTimeout(ProcessError):
    """The child did not finish within its timeout; it has been killed and reaped."""

    def __init__(self, argv: Sequence[str], timeout: float, stderr_tail: str) -> None:
        self.timeout = timeout
        super().__init__(argv, None, stderr_tail, reason=f"timed out after {timeout:g} s")


@dataclass(frozen=True, slots=True)
class CompletedProcess:
    """What a finished child left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr_tail: str


class _Tail:
    """The last ``limit`` bytes written to a pipe."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._trimmed = False

    def append(self, data: bytes) -> None:
        self._buf += data
        excess = len(self._buf) - self._limit
        if excess > 0:
            del self._buf[:excess]
            self._trimmed = True

    def text(self) -> str:
        data = bytes(self._buf)
        if self._trimmed:
            # The first line is probably cut in the middle; a partial line only confuses.
            _, _, rest = data.partition(b"\n")
            data = rest or data
        return data.decode("utf-8", errors="replace")


class Process:
    """One child process, used as ``async with Process(argv) as proc: await proc.wait()``.

    stdout is captured (up to ``stdout_limit`` bytes) unless ``on_stdout_line`` is given,
    in which case every line is handed to it as it arrives and nothing is kept. stdin is
    ``/dev/null`` unless ``input`` is given (ffmpeg otherwise reads commands from a tty).
    Leaving the block kills and reaps a child that is still running.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        on_stdout_line: StdoutLineCallback | None = None,
        stdout_limit: int = DEFAULT_STDOUT_LIMIT,
        stderr_limit: int = DEFAULT_STDERR_TAIL,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        if not argv:
            raise ValueError("argv must name a program")
        self.argv: tuple[str, ...] = tuple(os.fspath(a) for a in argv)
        self._input = input
        self._on_stdout_line = on_stdout_line
        self._stdout_limit = stdout_limit
        self._stdout = bytearray()
        self._stdout_overflow = False
        self._stderr = _Tail(stderr_limit)
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None
        self._group_gone = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- state -------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def stdout(self) -> bytes:
        return bytes(self._stdout)

    @property
    def stderr_tail(self) -> str:
        return self._stderr.text()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("process already started")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE
                if self._input is not None
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env,
                cwd=self._cwd,
                # Its own process group, so that kill() also reaches anything it spawned
                # and a Ctrl-C meant for the server does not hit it first.
                start_new_session=True,
            )
        except OSError as exc:
            raise ProcessError(
                self.argv, None, "", reason=f"could not be started ({exc.strerror or exc})"
            ) from exc
        proc = self._proc
        assert proc.stdout is not None and proc.stderr is not None
        self._tasks = [
            asyncio.create_task(self._wait_exit(proc)),
            asyncio.create_task(self._drain_stdout(proc.stdout)),
            asyncio.create_task(self._drain_stderr(proc.stderr)),
        ]
        if self._input is not None:
            assert proc.stdin is not None
            self._tasks.append(asyncio.create_task(self._feed(proc.stdin, self._input)))

    async def __aenter__(self) -> Process:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()

    async def wait(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - expiry kills the child, keeps stderr
        *,
        check: bool = True,
    ) -> int:
        """Wait for the child to exit and its output to be read; return the exit status.

        On timeout or cancellation the child is killed and reaped before this returns.
        With ``check``, a non-zero exit raises ``ProcessError``.
        """
        self._require_started()
        try:
            async with asyncio.timeout(timeout):
                # asyncio.wait, unlike gather, leaves the readers running when the wait is
                # cancelled, so the stderr tail is complete once the child has been killed.
                done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        except TimeoutError:
            await self.kill()
            raise ProcessTimeout(self.argv, timeout or 0.0, self.stderr_tail) from None
        except BaseException:
            await self.kill()
            raise
        for task in done:
            if (exc := task.exception()) is not None:
                await self.kill()
                raise exc
        proc = self._require_started()
        returncode = proc.returncode
        assert returncode is not None
        if self._stdout_overflow:
            raise ProcessError(
                self.argv,
                returncode,
                self.stderr_tail,
                reason=f"wrote more than {self._stdout_limit} bytes to stdout",
            )
        if check and returncode != 0:
            raise ProcessError(self.argv, returncode, self.stderr_tail)
        return returncode

    async def stop(self, grace: float = 5.0) -> int:
        """Ask the child to finish (SIGTERM: ffmpeg then writes its trailer), kill it after
        ``grace`` seconds, and return its exit status."""
        proc = self._require_started()
        if proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await proc.wait()
            except TimeoutError:
                pass
        await self.kill()
        returncode = proc.returncode
        assert returncode is not None
        return returncode

    async def kill(self) -> None:
        """Kill the child if it still runs, reap it and stop the pipe readers. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        self._signal_group(signal.SIGKILL)
        # Shielded: a second cancellation must not leave a zombie behind; the reaping
        # goes on and this coroutine still raises CancelledError.
        await asyncio.shield(self._reap(proc))

    def pause(self) -> None:
        """Stop the child (SIGSTOP) without ending it: an HLS run far enough ahead of its
        player waits instead of filling the disk. ``kill`` still works on a paused child."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    async def _wait_exit(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        # Whatever the child left behind in its group would hold the pipes open.
        self._signal_group(signal.SIGKILL)
        # From now on the group id is a free pid that another child may become leader of.
        self._group_gone = True

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=PIPE_CLOSE_GRACE)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
        for task in self._tasks:
            # Readers that failed have been reported by wait(); swallow them here so they
            # do not surface as "exception was never retrieved".
            if task.done() and not task.cancelled():
                task.exception()

    def _signal_group(self, signum: signal.Signals) -> None:
        if self._proc is None or self._group_gone:
            return
        # The group id is the child's pid, which stays reserved until the child is reaped.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signum)

    def _require_started(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise RuntimeError("process not started")
        return self._proc

    # -- pipes -------------------------------------------------------------------------

    async def _drain_stdout(self, reader: asyncio.StreamReader) -> None:
        if self._on_stdout_line is not None:
            callback = self._on_stdout_line
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        callback(exc.partial)
                    return
                except asyncio.LimitOverrunError as exc:
                    # A "line" longer than the reader's buffer: hand it over in pieces.
                    line = await reader.read(exc.consumed)
                callback(line)
        while chunk := await reader.read(READ_CHUNK):
            if len(self._stdout) + len(chunk) > self._stdout_limit:
                self._stdout_overflow = True
                self._signal_group(signal.SIGKILL)
                # Keep reading (and discarding) so the child is never blocked on the pipe.
                continue
            self._stdout += chunk

    async def _drain_stderr(self, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(READ_CHUNK):
            self._stderr.append(chunk)

    @staticmethod
    async def _feed(writer: asyncio.StreamWriter, data: bytes) -> None:
        try:
            writer.write(data)
            await writer.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child stopped reading; its exit status tells the story
        finally:
            writer.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await writer.wait_closed()


async def run(
    argv: Sequence[str],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - expiry kills the child, keeps stderr
    input: bytes | None = None,
    check: bool = True,
    on_stdout_line: StdoutLineCallback | None = None,
    stdout_limit: int = DEFAULT_STDOUT_LIMIT,
    stderr_limit: int = DEFAULT_STDERR_TAIL,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> CompletedProcess:
    """Run ``argv`` to completion (no shell) and return its exit status and output."""
    async with Process(
        argv,
        input=input,
        on_stdout_line=on_stdout_line,
        stdout_limit=stdout_limit,
        stderr_limit=stderr_limit,
        env=env,
        cwd=cwd,
    ) as proc:
        returncode = await proc.wait(timeout, check=check)
        return CompletedProcess(proc.argv, returncode, proc.stdout, proc.stderr_tail)


# -- ffmpeg -progress ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """One block of ``ffmpeg -progress`` output, ended by ``progress=continue|end``."""

    out_time: float | None  # seconds of output written (from out_time_us)
    speed: float | None  # multiple of real time ("1.5x"); None while ffmpeg says N/A
    frame: int | None
    total_size: int | None  # bytes written so far
    done: bool  # progress=end: the last block
    fields: Mapping[str, str] = field(default_factory=dict)  # every key as ffmpeg sent it


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _parse_speed(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip().removesuffix("x")
    try:
        speed = float(value)
    except ValueError:
        return None
    return speed if speed >= 0 else None


def progress_from_fields(fields: Mapping[str, str]) -> Progress:
    """Build a ``Progress`` from one block's keys (pure)."""
    out_time_us = _int_or_none(fields.get("out_time_us"))
    if out_time_us is None:
        # Older builds only have out_time_ms, which has always been microseconds too.
        out_time_us = _int_or_none(fields.get("out_time_ms"))
    # ffmpeg prints a huge negative number before the first frame is written.
    out_time = out_time_us / 1_000_000 if out_time_us is not None and out_time_us >= 0 else None
    return Progress(
        out_time=out_time,
        speed=_parse_speed(fields.get("speed")),
        frame=_int_or_none(fields.get("frame")),
        total_size=_int_or_none(fields.get("total_size")),
        done=fields.get("progress") == "end",
        fields=dict(fields),
    )


class ProgressParser:
    """Feed it lines of ``-progress`` output; it returns (and reports) each finished block.

    ``Process(argv, on_stdout_line=ProgressParser(on_progress).feed_line)`` wires it to a
    running ffmpeg; ``iter_progress`` does the same for any async source of lines.
    """

    def __init__(self, on_progress: Callable[[Progress], None] | None = None) -> None:
        self._on_progress = on_progress
        self._fields: dict[str, str] = {}

    def feed_line(self, line: bytes | str) -> Progress | None:
        text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
        text = text.strip()
        key, sep, value = text.partition("=")
        if not sep or not key:
            return None  # blank or garbage lines carry nothing
        self._fields[key.strip()] = value.strip()
        if key.strip() != "progress":
            return None
        progress = progress_from_fields(self._fields)
        self._fields = {}
        if self._on_progress is not None:
            self._on_progress(progress)
        return progress


async def iter_progress(lines: AsyncIterable[bytes | str]) -> AsyncIterator[Progress]:
    """Yield a ``Progress`` for every block in ``lines`` (an ``asyncio.StreamReader`` works)."""
    parser = ProgressParser()
    async for line in lines:
        progress = parser.feed_line(line)
        if progress is not None:
            yield progress
            if progress.done:
                return
