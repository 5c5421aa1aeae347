"""The schema, as numbered migrations recorded in ``PRAGMA user_version`` and applied at open.

Migration N (1-based) takes a database from user_version N-1 to N. Append only: a released
migration is never edited, because databases in the field already ran it. The job statuses
in the CHECK constraints are those of ``server.jobs.lifecycle``; a test compares them.
"""

from __future__ import annotations

import sqlite3

#: Written into the file header by migration 1 ("MATN"), so a foreign SQLite file is refused.
APPLICATION_ID = 0x4D41544E

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        job_id        TEXT PRIMARY KEY,
        movie_id      INTEGER,
        status        TEXT NOT NULL CHECK (status IN
                          ('queued', 'downloading', 'preparing', 'ready', 'error', 'deleted')),
        progress      REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        playable      INTEGER NOT NULL DEFAULT 0 CHECK (playable IN (0, 1)),
        bytes_done    INTEGER NOT NULL DEFAULT 0,
        bytes_total   INTEGER NOT NULL DEFAULT 0,
        speed_bps     REAL NOT NULL DEFAULT 0,
        eta_seconds   REAL,
        error_message TEXT,
        release_title TEXT,
        release_id    TEXT,
        mode          TEXT NOT NULL CHECK (mode IN ('auto', 'manual', 'nzb')),
        attempt       INTEGER NOT NULL DEFAULT 1,
        source        TEXT NOT NULL CHECK (source IN ('upload', 'url', 'fetch')),
        nzb_name      TEXT,
        dir           TEXT NOT NULL,
        media_name    TEXT,
        media_kind    TEXT CHECK (media_kind IN ('file', 'rar')),
        content_type  TEXT,
        media_size    INTEGER,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        ready_at      REAL,
        expires_at    REAL
    ) STRICT;
    CREATE INDEX jobs_by_updated ON jobs (updated_at);
    CREATE INDEX jobs_by_status ON jobs (status, updated_at);
    CREATE INDEX jobs_by_movie ON jobs (movie_id) WHERE movie_id IS NOT NULL;
    CREATE INDEX jobs_by_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;

    CREATE TABLE job_events (
        id       INTEGER PRIMARY KEY,
        job_id   TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
        at       REAL NOT NULL,
        kind     TEXT NOT NULL,
        message  TEXT NOT NULL,
        data     TEXT
    ) STRICT;
    CREATE INDEX job_events_by_job ON job_events (job_id, id);

    CREATE TABLE watch_positions (
        job_id     TEXT PRIMARY KEY REFERENCES jobs (job_id) ON DELETE CASCADE,
        seconds    REAL NOT NULL CHECK (seconds >= 0),
        updated_at REAL NOT NULL
    ) STRICT;
    CREATE INDEX watch_positions_by_updated ON watch_positions (updated_at);

    CREATE TABLE http_cache (
        key        TEXT PRIMARY KEY,
        value      BLOB NOT NULL,
        expires_at REAL NOT NULL
    ) STRICT;
    CREATE INDEX http_cache_by_expiry ON http_cache (expires_at);

    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        data       TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    ) STRICT;
    CREATE INDEX sessions_by_expiry ON sessions (expires_at);

    PRAGMA application_id = 1296127054;
    """,
    # 2: why a job failed, in a word a program can act on (server.jobs.lifecycle.Failure).
    """
    ALTER TABLE jobs ADD COLUMN failure TEXT CHECK (failure IN
        ('usenet', 'storage', 'indexer', 'tmdb', 'release', 'media', 'internal'));
    """,
    # 3: the household's password lives here, so that a change takes effect at once (also
    # under systemd, where the config file is read-only); ``epoch`` counts changes and "log
    # out everywhere", and keys the media tokens.
    """
    CREATE TABLE credentials (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        password_hash TEXT,
        source        TEXT NOT NULL CHECK (source IN ('none', 'config', 'set')),
        epoch         INTEGER NOT NULL DEFAULT 0,
        changed_at    REAL
    ) STRICT;
    INSERT INTO credentials (id, password_hash, source, epoch) VALUES (1, NULL, 'none', 0);
    """,
    # 4: the household's playback choices (audio and subtitle language), kept across films.
    """
    CREATE TABLE preferences (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at REAL NOT NULL
    ) STRICT;
    """,
    # 5: the mirror to R2 and the other retention timers. On the job: where its copy in R2
    # stands (server.jobs.lifecycle.MirrorState) and its deadlines (``expires_at`` stays the
    # ready/failed one; idle and local beside it). An unfinished multipart upload's UploadId
    # and the parts R2 confirmed, so that a restart goes on with ListParts.
    """
    ALTER TABLE jobs ADD COLUMN mirror TEXT CHECK (mirror IN
        ('pending', 'mirroring', 'mirrored', 'failed'));
    ALTER TABLE jobs ADD COLUMN mirror_bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN mirror_error TEXT;
    ALTER TABLE jobs ADD COLUMN mirrored_at REAL;
    ALTER TABLE jobs ADD COLUMN local_expires_at REAL;
    ALTER TABLE jobs ADD COLUMN local_deleted_at REAL;
    ALTER TABLE jobs ADD COLUMN idle_expires_at REAL;
    CREATE INDEX jobs_by_local_expiry ON jobs (local_expires_at)
        WHERE local_expires_at IS NOT NULL;
    CREATE INDEX jobs_by_idle_expiry ON jobs (idle_expires_at)
        WHERE idle_expires_at IS NOT NULL;

    CREATE TABLE uploads (
        job_id     TEXT PRIMARY KEY REFERENCES jobs (job_id) ON DELETE CASCADE,
        object_key TEXT NOT NULL,
        upload_id  TEXT NOT NULL,
        size       INTEGER NOT NULL CHECK (size >= 0),
        part_size  INTEGER NOT NULL CHECK (part_size > 0),
        sha256     TEXT NOT NULL,
        started_at REAL NOT NULL
    ) STRICT;

    CREATE TABLE upload_parts (
        job_id TEXT NOT NULL REFERENCES uploads (job_id) ON DELETE CASCADE,
        number INTEGER NOT NULL CHECK (number BETWEEN 1 AND 10000),
        etag   TEXT NOT NULL,
        size   INTEGER NOT NULL CHECK (size >= 0),
        PRIMARY KEY (job_id, number)
    ) STRICT;
    """,
)


def split_statements(script: str) -> list[str]:
    """One migration script as single statements, so that it can run inside our transaction.

    ``executescript`` would commit first, which is why it is not used; sqlite3's own
    tokenizer (`complete_statement`) decides where a statement ends, so semicolons in
    strings or trigger bodies do not split.
    """
    statements: list[str] = []
    start = 0
    for i, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : i + 1]):
            statements.append(script[start : i + 1].strip())
            start = i + 1
    rest = [line.strip() for line in script[start:].splitlines()]
    if any(line and not line.startswith("--") for line in rest):
        raise ValueError(f"migration ends without ';': {script[start:].strip()[:80]!r}")
    return statements
