"""Mirror benchmark: a 2 GB file uploaded to an S3 server on loopback by Matinee's mirror and
by the AWS CLI (Debian's awscli, `aws s3 cp`), same part size and concurrency, alternating.

What it does (everything in a temp dir removed at the end):

1. starts moto's S3 server (`python -m moto.server`) on a free port and makes a bucket;
2. writes a file of `--size-mb` random bytes (2048 by default);
3. `--rounds` times, alternating which goes first: Matinee's mirror (the `Uploader` of
   server/mirror/upload.py with its own client, store and retries, in a child process of
   its own: the SHA-256 pass, CreateMultipartUpload, the parts, Complete and the HEAD check)
   and `aws s3 cp` with the same part size (8 MiB, what Matinee picks for 2 GB) and
   concurrency (`--concurrency`, 4); each upload's object is deleted before the next;
4. prints each run's throughput and the peak RSS (VmHWM) of each uploading process, the
   ratio of the medians (Matinee / AWS CLI; ≥ 1.0 is the target) and Matinee's peak RSS
   (≤ 150 MB is the target), then one JSON line with every number.

The S3 server is the same for both and, being Python, may be what limits both: the ratio
compares the clients on equal terms, not against R2. The machine is shared (2 cores).

    .venv/bin/python bench/mirror.py [--size-mb 2048] [--rounds 3] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from common import LOOPBACK, MIB, free_port, install_signal_handlers, log, workspace
from common import write_random_file as write_random

REPO = Path(__file__).resolve().parent.parent
KEY_ID, SECRET = "bench-key", "bench-secret"
AWS = "/usr/bin/aws"  # Debian's awscli (the project's .ci/system-deps.sh installs it)
BUCKET = "matinee-bench"


def start_moto(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("moto server exited")
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("moto server did not start")


def s3(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )


def timed_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - started
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}):\n{out[-2000:]}")
    return took, usage.ru_maxrss * 1024


def matinee_run(path: Path, endpoint: str, concurrency: int, tmp: Path) -> tuple[float, int]:
    argv = [sys.executable, __file__, "--child", str(path), "--endpoint", endpoint,
            "--concurrency", str(concurrency), "--tmp", str(tmp)]  # fmt: skip
    return timed_child(argv)


def aws_run(path: Path, endpoint: str, concurrency: int, part: int, tmp: Path) -> tuple[float, int]:
    """Debian's `aws s3 cp` with the same part size and concurrency."""
    config = tmp / "aws-config"
    config.write_text(
        "[default]\ns3 =\n"
        f"  multipart_chunksize = {part // MIB}MB\n"  # the CLI's MB are MiB
        f"  multipart_threshold = {part // MIB}MB\n"
        f"  max_concurrent_requests = {concurrency}\n"
        "  addressing_style = path\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    argv = [AWS, "s3", "cp", "--only-show-errors", "--endpoint-url", endpoint, str(path),
            f"s3://{BUCKET}/aws/{path.name}"]  # fmt: skip
    return timed_child(argv, env)


async def child_upload(path: Path, endpoint: str, concurrency: int, tmp: Path) -> None:
    """Matinee's mirror alone: its client, store and Uploader, as the app runs them."""
    sys.path.insert(0, str(REPO))
    from server.config.settings import R2Config
    from server.jobs.lifecycle import Mode, Source
    from server.mirror.client import open_client
    from server.mirror.parts import file_pieces, object_key
    from server.mirror.upload import Target, Uploader
    from server.store.db import store_context
    from server.store.jobs import Job

    r2 = R2Config(
        enabled=True,
        endpoint=endpoint,
        bucket=BUCKET,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        concurrency=concurrency,
        path_style=True,
    )
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(store_context(tmp / "bench.sqlite3"))
        job = await store.jobs.create(
            Job(
                job_id=f"job_{time.time_ns()}_bench",
                mode=Mode.NZB,
                source=Source.UPLOAD,
                dir=str(path.parent),
            )
        )
        client = await open_client(r2, stack)
        uploader = Uploader(client, BUCKET, store, concurrency=concurrency)
        size = os.stat(path).st_size
        key = object_key(job.job_id, path.name)
        target = Target(job.job_id, file_pieces(path), size, key, "video/mp4")

        async def progress(_done: int) -> None:
            pass

        await uploader.upload(target, progress)


def empty_bucket(client: Any) -> None:
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])


def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    if not Path(AWS).exists():
        raise RuntimeError("Debian's awscli is missing: apt-get install awscli")
    port = free_port()
    moto = start_moto(port)
    endpoint = f"http://{LOOPBACK}:{port}"
    try:
        client = s3(endpoint)
        client.create_bucket(Bucket=BUCKET)
        size = args.size_mb * MIB
        path = tmp / "Film.2024.mkv"
        log(f"writing {args.size_mb} MiB of random bytes")
        write_random(path, size)
        sys.path.insert(0, str(REPO))
        from server.mirror.parts import part_size

        part = part_size(size)
        runs: dict[str, list[dict[str, float]]] = {"matinee": [], "aws": []}
        for round_ in range(args.rounds):
            order = ["matinee", "aws"] if round_ % 2 == 0 else ["aws", "matinee"]
            for who in order:
                if who == "matinee":
                    took, rss = matinee_run(path, endpoint, args.concurrency, tmp)
                else:
                    took, rss = aws_run(path, endpoint, args.concurrency, part, tmp)
                mb_s = size / took / 1e6
                runs[who].append({"seconds": took, "mb_per_s": mb_s, "peak_rss_mb": rss / 1e6})
                log(f"  round {round_ + 1} {who:8s} {took:6.1f} s  {mb_s:6.1f} MB/s"
                    f"  peak RSS {rss / 1e6:6.1f} MB")  # fmt: skip
                empty_bucket(client)
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    med = {who: statistics.median(r["mb_per_s"] for r in rs) for who, rs in runs.items()}
    peak = max(r["peak_rss_mb"] for r in runs["matinee"])
    ratio = med["matinee"] / med["aws"]
    log(f"part size {part // MIB} MiB, concurrency {args.concurrency}, {args.size_mb} MiB file")
    log(f"median throughput: Matinee {med['matinee']:.1f} MB/s, aws {med['aws']:.1f} MB/s"
        f" -> ratio {ratio:.2f} (target >= 1.0)")  # fmt: skip
    log(f"Matinee's peak RSS: {peak:.0f} MB (target <= 150 MB);"
        f" the AWS CLI's {max(r['peak_rss_mb'] for r in runs['aws']):.0f} MB")  # fmt: skip
    return {
        "size_mb": args.size_mb,
        "part_mib": part // MIB,
        "concurrency": args.concurrency,
        "runs": runs,
        "median_mb_per_s": med,
        "ratio": ratio,
        "matinee_peak_rss_mb": peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tmp", default=None, help="where the temp dir goes")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child_upload(Path(args.child), args.endpoint, args.concurrency, Path(args.tmp)))
        return 0
    install_signal_handlers()
    with workspace(args.tmp) as tmp:
        result = bench(args, tmp)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
