"""Post files to a news server as yEnc articles and return their NZB, like Nyuu would.

`post_file` / `post_files` stream each file through tests.support.yenc (part by part, never
whole in memory) to either a private `Inn2Server` (fed straight to innd, readable when the
call returns) or any `(host, port)`: innd's feed port with `innd=True` (streaming
TAKETHIS), otherwise a reader port that allows POST (nnrpd).

Several files go into one NZB (a video plus its par2 set, say). With `obfuscate=True`
each file is posted under a random hex name, as subject and as yEnc name, so only the
par2 files (made from the real files beforehand) still know the real names.

Command line, for the benchmarks (which may not import tests/; run from the repository
root):

    python -m tests.support.poster --host H --port P [--innd] FILE... --out X.nzb
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.inn2 import DEFAULT_GROUP, Inn2Server, feed, post_via_reader
from tests.support.yenc import DEFAULT_PART_SIZE, Article, NzbEntry, build_nzb, iter_articles

ServerLike = Inn2Server | tuple[str, int]


@dataclasses.dataclass
class _Posted:
    """What the NZB needs of one file, gathered while its articles stream past."""

    subject: str = ""
    segments: list[tuple[int, int, str]] = dataclasses.field(default_factory=list)

    def entry(self) -> NzbEntry:
        return NzbEntry(self.subject, tuple(self.segments))


async def post_files(
    server: ServerLike,
    paths: Sequence[Path],
    *,
    names: Sequence[str | None] | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    connections: int = 4,
    group: str = DEFAULT_GROUP,
    obfuscate: bool = False,
    innd: bool = False,
    id_domain: str = "matinee.test",
    meta: dict[str, str] | None = None,
) -> bytes:
    """Post every file in `paths` (in order, over shared connections); return the NZB.

    `names` overrides the posted name of each file (None: its file name); `obfuscate`
    replaces every name by random hex. For a `(host, port)` server, `innd` says whether
    the port is innd's feed port (TAKETHIS) or a reader port (POST). Message-ids derive
    from name, size, path and content; post the same file twice only under another
    `id_domain`, as the server refuses a message-id it already has.
    """
    paths = [Path(p) for p in paths]
    if names is not None and len(names) != len(paths):
        raise ValueError("names must match paths one to one")
    posted = [_Posted() for _ in paths]

    def articles() -> Iterator[Article]:
        for i, path in enumerate(paths):
            name = names[i] if names is not None else None
            record = posted[i]
            hidden = secrets.token_hex(16) if obfuscate else None
            for article in iter_articles(
                path,
                name=hidden or name or path.name,
                part_size=part_size,
                id_domain=id_domain,
                index=i + 1,
                count=len(paths),
            ):
                if hidden is not None:
                    # Nothing readable anywhere but in the par2 packets.
                    article = dataclasses.replace(article, subject=hidden)
                if article.number == 1:
                    # What posters put in the NZB: the first part's subject, "... (1/N)".
                    record.subject = article.subject
                record.segments.append((article.number, article.nzb_bytes, article.message_id))
                yield article

    if isinstance(server, Inn2Server):
        await server.post(articles(), group=group, connections=connections)
    elif innd:
        await feed(*server, articles(), group=group, connections=connections)
    else:
        await post_via_reader(*server, articles(), group=group, connections=connections)
    return build_nzb((p.entry() for p in posted), group=group, meta=meta)


async def post_file(
    server: ServerLike,
    path: Path,
    *,
    name: str | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    connections: int = 4,
    group: str = DEFAULT_GROUP,
    obfuscate: bool = False,
    innd: bool = False,
    id_domain: str = "matinee.test",
    meta: dict[str, str] | None = None,
) -> bytes:
    """Post one file; return its NZB. See `post_files`."""
    return await post_files(
        server,
        [path],
        names=[name],
        part_size=part_size,
        connections=connections,
        group=group,
        obfuscate=obfuscate,
        innd=innd,
        id_domain=id_domain,
        meta=meta,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.poster",
        description="Post files as yEnc articles; write their NZB.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--innd", action="store_true", help="PORT is innd's feed port (fast TAKETHIS)"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the NZB")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--group", default=DEFAULT_GROUP)
    parser.add_argument("--part-size", type=int, default=DEFAULT_PART_SIZE)
    parser.add_argument("--obfuscate", action="store_true", help="random hex names")
    parser.add_argument("--id-domain", default="matinee.test")
    args = parser.parse_args(argv)

    size = sum(p.stat().st_size for p in args.files)
    started = time.monotonic()
    nzb = asyncio.run(
        post_files(
            (args.host, args.port),
            args.files,
            part_size=args.part_size,
            connections=args.connections,
            group=args.group,
            obfuscate=args.obfuscate,
            innd=args.innd,
            id_domain=args.id_domain,
        )
    )
    seconds = time.monotonic() - started
    args.out.write_bytes(nzb)
    segments = nzb.count(b"<segment ")
    print(
        json.dumps(
            {
                "nzb": str(args.out),
                "files": len(args.files),
                "segments": segments,
                "bytes": size,
                "seconds": round(seconds, 3),
                "mb_per_s": round(size / seconds / 1e6, 1) if seconds else None,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
