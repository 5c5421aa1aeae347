"""The job lifecycle: every status a job can have, the changes allowed between them, which
are final, and what a person reads for each. The one owner of this vocabulary.

::

                      ┌───────────── retry: the next release ─────────────┐
                      ▼                                                    │
    (new) ──► queued ──► downloading ──► preparing ──► ready              │
                │  │          │  │           │  │         │                │
                │  └──────────┼──┴───────────┼──┴─────────┼── retry ───────┘
                │             │              │            │
                └──► error ◄──┴──────────────┘            │
                       │                                  │
                       └────────────► deleted ◄───────────┴── (and from every status)

* ``retry`` is its own edge: when auto mode gives up on a release and moves to the next-best
  one, the job goes straight back to ``queued`` (with its attempt counted up). It never
  passes through ``error``, so nobody following the job sees a failure that is not one.
* Final statuses are those after which the job's runner has nothing more to do: ``ready``,
  ``error`` and ``deleted``. Event streams end there. Only ``deleted`` follows them (a
  retention timer, or a person).

Everything else takes it from here: the store's CHECK constraint (a test compares them), the
store's transition check, the API's status filter and OpenAPI enum, the templates and the
browser's JavaScript (the same table, rendered into every page as JSON). This module imports
nothing from Matinee, so every layer may use it.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PREPARING = "preparing"
    READY = "ready"
    ERROR = "error"
    DELETED = "deleted"


class Mode(StrEnum):
    """How a job got its release: chosen by Matinee, by a person, or given as an NZB."""

    AUTO = "auto"
    MANUAL = "manual"
    NZB = "nzb"


class Source(StrEnum):
    """Where the NZB came from: an upload, a URL of an indexer, or a fetch for a movie."""

    UPLOAD = "upload"
    URL = "url"
    FETCH = "fetch"


class MediaKind(StrEnum):
    """How the movie is read: a plain file, or a file stored in RAR volumes."""

    FILE = "file"
    RAR = "rar"


class MirrorState(StrEnum):
    """Where a ready job's copy in R2 stands (``Job.mirror``; None while R2 has no part in it).

    Beside the status, not one of them: a job is ``ready`` while its file uploads, and stays
    ``ready`` after its local copy is dropped (it plays from R2 then)."""

    PENDING = "pending"  # ready, and the upload waits for its turn
    MIRRORING = "mirroring"  # parts are being uploaded (``mirror_bytes`` of ``media_size``)
    MIRRORED = "mirrored"  # the object is in R2, its sha256 checked by a HEAD
    FAILED = "failed"  # it will not be uploaded (``mirror_error`` says why); the local copy stays


#: The mirror still moves by itself: event streams go on until it is done.
MIRROR_MOVING: frozenset[MirrorState] = frozenset({MirrorState.PENDING, MirrorState.MIRRORING})


class Expiry(StrEnum):
    """Why a retention timer deleted something: the job event's ``reason``, the metric's label."""

    READY = "ready"  # [retention] ready_hours after it was ready
    IDLE = "idle"  # [retention] idle_hours after the last saved playback position
    LOCAL = "local"  # [retention] local_hours after it was mirrored: only the local copy goes
    FAILED = "failed"  # [retention] failed_hours after it failed
    SPACE = "space"  # room for another download (least recently watched first)


class Failure(StrEnum):
    """Why a job failed, for programs (the API's error code) and for the retry logic."""

    USENET = "usenet"  # every Usenet server refused, or articles are missing beyond repair
    STORAGE = "storage"  # the disk failed or is full
    INDEXER = "indexer"  # no indexer gave a usable NZB
    TMDB = "tmdb"  # TMDB could not say what the movie is
    RELEASE = "release"  # no release (left) to try
    MEDIA = "media"  # the download holds nothing playable, or extraction failed
    INTERNAL = "internal"  # a bug: the log has the details


S = Status

#: Allowed changes; staying in the same status is always allowed (progress updates).
TRANSITIONS: Mapping[Status, frozenset[Status]] = types.MappingProxyType(
    {
        S.QUEUED: frozenset({S.DOWNLOADING, S.ERROR, S.DELETED}),
        S.DOWNLOADING: frozenset({S.PREPARING, S.QUEUED, S.ERROR, S.DELETED}),
        S.PREPARING: frozenset({S.READY, S.QUEUED, S.ERROR, S.DELETED}),
        S.READY: frozenset({S.DELETED}),
        S.ERROR: frozenset({S.DELETED}),
        S.DELETED: frozenset(),
    }
)
#: The retry edge: from these a job may go back to ``queued`` for its next release.
RETRYABLE: frozenset[Status] = frozenset({S.QUEUED, S.DOWNLOADING, S.PREPARING})
#: A runner works on jobs in these; they resume after a restart.
ACTIVE: frozenset[Status] = frozenset({S.QUEUED, S.DOWNLOADING, S.PREPARING})
#: The movie's current job is in one of these: something to show, or on its way.
CURRENT: frozenset[Status] = ACTIVE | {S.READY}
#: Nothing more happens to the job by itself (but deletion).
FINAL: frozenset[Status] = frozenset({S.READY, S.ERROR, S.DELETED})

LABELS: Mapping[Status, str] = types.MappingProxyType(
    {
        S.QUEUED: "Waiting to start",
        S.DOWNLOADING: "Downloading",
        S.PREPARING: "Preparing the file",
        S.READY: "Ready",
        S.ERROR: "Failed",
        S.DELETED: "Deleted",
    }
)
MIRROR_LABELS: Mapping[str, str] = types.MappingProxyType(
    {
        MirrorState.PENDING.value: "Waiting to upload to R2",
        MirrorState.MIRRORING.value: "Uploading to R2",
        MirrorState.MIRRORED.value: "In R2",
        MirrorState.FAILED.value: "Not in R2",
    }
)
#: The label of a job that is queued again for its next release.
RETRY_LABEL = "Trying another release"


def may_change(old: Status, new: Status) -> bool:
    """Whether a job may go from ``old`` to ``new`` (the retry edge included)."""
    return old == new or new in TRANSITIONS[old]


def is_retry(old: Status, new: Status) -> bool:
    return new is S.QUEUED and old in RETRYABLE and old != new


def label(status: Status, attempt: int = 1) -> str:
    """What a person reads for a job's status."""
    return RETRY_LABEL if status is S.QUEUED and attempt > 1 else LABELS[status]


def at_rest(status: Status, mirror: MirrorState | None) -> bool:
    """Nothing more happens to the job by itself but deletion: its status is final and its
    upload to R2 (if any) is over. Event streams end here."""
    return status is S.DELETED or (status in FINAL and mirror not in MIRROR_MOVING)


def can_play(status: Status, playable: bool) -> bool:
    return playable and status not in (S.ERROR, S.DELETED)


def as_json() -> dict[str, object]:
    """The table for the browser, rendered into every page (``format.js`` reads it)."""
    return {
        "statuses": [s.value for s in Status],
        "labels": {s.value: text for s, text in LABELS.items()},
        "retry_label": RETRY_LABEL,
        "active": sorted(s.value for s in ACTIVE),
        "final": sorted(s.value for s in FINAL),
        "unplayable": [S.ERROR.value, S.DELETED.value],
        "mirror_states": [m.value for m in MirrorState],
        "mirror_labels": dict(MIRROR_LABELS),
        "mirror_moving": sorted(m.value for m in MIRROR_MOVING),
    }
