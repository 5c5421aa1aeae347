"""Cutting a movie into parts, and what an S3 failure means: pure, with literal inputs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from server.config.settings import R2Config
from server.jobs.lifecycle import MirrorState, Mode, Source, Status
from server.mirror.client import describe, is_transient
from server.mirror.parts import (
    MAX_PARTS,
    MIB,
    job_of_key,
    object_key,
    part_count,
    part_size,
    part_span,
)
from server.mirror.serve import media_origin, plays_from_r2
from server.store.jobs import Job

GIB = 1024 * MIB


@pytest.mark.parametrize(
    ("size", "part"),
    [(0, 8 * MIB), (1, 8 * MIB), (2 * GIB, 8 * MIB), (80 * GIB, 9 * MIB), (200 * GIB, 21 * MIB)],
)
def test_the_file_fits_in_ten_thousand_parts_of_at_least_8_mib(size: int, part: int) -> None:
    assert part_size(size) == part
    assert part_count(size, part) <= MAX_PARTS
    last = part_count(size, part)
    assert part_span(last, size, part)[0] + part_span(last, size, part)[1] == size


def test_keys_are_per_job_under_the_prefix() -> None:
    key = object_key("job_1_ab", "The Movie (2019).mkv")
    assert key == "movies/job_1_ab/The Movie (2019).mkv"
    assert job_of_key(key) == "job_1_ab"
    assert job_of_key("other/job_1_ab/x") is None and job_of_key("movies/x") is None


def _error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "UploadPart"
    )


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (_error("SlowDown", 503), True),
        (_error("InternalError", 500), True),
        (_error("", 502), True),
        (EndpointConnectionError(endpoint_url="https://r2.example"), True),
        (ReadTimeoutError(endpoint_url="https://r2.example"), True),
        (_error("InvalidAccessKeyId", 403), False),
        (_error("NoSuchBucket", 404), False),
    ],
)
def test_what_is_worth_trying_again(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_permanent_failure_says_what_to_fix_without_secrets() -> None:
    text = describe(_error("SignatureDoesNotMatch", 403), "upload part 3")
    assert "check [r2] secret_access_key" in text


R2 = R2Config(enabled=True, endpoint="https://acc.r2.example", bucket="films", serve="auto")
MIRRORED = Job(
    job_id="job_1_ab",
    mode=Mode.NZB,
    source=Source.UPLOAD,
    dir="/x",
    status=Status.READY,
    mirror=MirrorState.MIRRORED,
)


@pytest.mark.parametrize(
    ("serve", "lan", "local", "r2"),
    [
        ("auto", True, True, False),
        ("auto", False, True, True),
        ("auto", True, False, True),
        ("local", False, True, False),
        ("local", True, False, True),
        ("r2", True, True, True),
    ],
)
def test_the_serve_policy(serve: str, lan: bool, local: bool, r2: bool) -> None:
    config = R2Config(enabled=True, endpoint=R2.endpoint, bucket=R2.bucket, serve=serve)
    job = MIRRORED if local else Job(**{**_fields(MIRRORED), "local_deleted_at": 1.0})
    assert plays_from_r2(job, config, from_lan=lan) is r2


def test_not_mirrored_plays_locally_and_media_origin() -> None:
    pending = Job(**{**_fields(MIRRORED), "mirror": MirrorState.MIRRORING})
    assert not plays_from_r2(pending, R2, from_lan=False)
    assert media_origin(R2) == "https://films.acc.r2.example"
    path_style = R2Config(
        enabled=True, endpoint="http://127.0.0.1:9000", bucket="b", path_style=True
    )
    assert media_origin(path_style) == "http://127.0.0.1:9000"
    assert media_origin(R2Config()) is None


def _fields(job: Job) -> dict[str, Any]:
    return {f.name: getattr(job, f.name) for f in dataclasses.fields(job)}
