"""The JSON API as OpenAPI 3.1, served at /api/openapi.json and kept true by a test that
checks real responses against it."""

from __future__ import annotations

from typing import Any

from server.http.errors import ERROR_CODES
from server.jobs.lifecycle import MirrorState, Status

#: Where the API lives below the base path: the original contract's prefix.
API_PREFIX = "api/movies-on-demand"
JOB_STATUSES = [s.value for s in Status]
MIRROR_STATES = [m.value for m in MirrorState]

S = dict[str, Any]


def _nullable(t: str) -> S:
    return {"type": [t, "null"]}


def _obj(required: list[str], props: S, *, extra: bool = True) -> S:
    return {
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": extra,
    }


def _ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: S, description: str) -> S:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> S:
    names = {
        400: "Invalid input",
        401: "No API key or session",
        403: "Credentials, but not for this (a missing CSRF token)",
        404: "Not found",
        409: "Conflict",
        429: "Rate limited",
        500: "Internal error",
        502: "An upstream service failed",
    }
    return {str(s): _json(_ref("Error"), names[s]) for s in statuses}


MOVIE = _obj(
    ["id", "title"],
    {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "original_title": _nullable("string"),
        "overview": _nullable("string"),
        "release_date": _nullable("string"),
        "year": _nullable("integer"),
        "poster_path": _nullable("string"),
        "backdrop_path": _nullable("string"),
        "vote_average": _nullable("number"),
        "vote_count": _nullable("integer"),
        "popularity": _nullable("number"),
        "genre_ids": {"type": "array", "items": {"type": "integer"}},
        "original_language": _nullable("string"),
    },
)
MOVIE_LIST = _obj(
    ["page", "results", "total_pages", "total_results"],
    {
        "page": {"type": "integer", "minimum": 1},
        "results": {"type": "array", "items": _ref("Movie")},
        "total_pages": {"type": "integer", "minimum": 0},
        "total_results": {"type": "integer", "minimum": 0},
    },
)
PERSON = _obj(["id", "name"], {"id": {"type": "integer"}, "name": {"type": "string"}})
JOB_STATUS = _obj(
    ["job_id", "status", "progress", "error_message"],
    {
        "job_id": {"type": "string"},
        "status": {"enum": JOB_STATUSES},
        "progress": {"type": "number"},
        "error_message": _nullable("string"),
    },
)
MOVIE_DETAILS = {
    "allOf": [
        _ref("Movie"),
        _obj(
            [
                "runtime",
                "imdb_id",
                "genres",
                "production_companies",
                "budget",
                "revenue",
                "cast",
                "crew",
                "job_status",
            ],
            {
                "runtime": _nullable("integer"),
                "imdb_id": _nullable("string"),
                "genres": {"type": "array", "items": _obj(["id", "name"], {})},
                "production_companies": {"type": "array", "items": _obj(["id", "name"], {})},
                "budget": _nullable("integer"),
                "revenue": _nullable("integer"),
                "cast": {"type": "array", "items": PERSON},
                "crew": {"type": "array", "items": PERSON},
                "job_status": {"oneOf": [_ref("JobStatus"), {"type": "null"}]},
            },
        ),
    ]
}
RELEASE = _obj(
    [
        "release_id",
        "title",
        "size",
        "quality",
        "source",
        "codec",
        "group",
        "indexer",
        "pub_date",
        "score",
    ],
    {
        "release_id": {"type": "string"},
        "title": {"type": "string"},
        "size": _nullable("integer"),
        "quality": _nullable("string"),
        "source": _nullable("string"),
        "codec": _nullable("string"),
        "group": _nullable("string"),
        "indexer": {"type": "string"},
        "pub_date": _nullable("string"),
        "score": {"type": "integer"},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "excluded": {"type": "boolean"},
    },
)
RELEASES = _obj(
    ["movie_id", "imdb_id", "releases"],
    {
        "movie_id": {"type": "integer"},
        "imdb_id": _nullable("string"),
        "releases": {"type": "array", "items": _ref("Release")},
        "indexer_errors": {"type": "object", "additionalProperties": {"type": "string"}},
    },
)
JOB = _obj(
    [
        "job_id",
        "movie_id",
        "status",
        "progress",
        "playable",
        "bytes_done",
        "bytes_total",
        "speed_bps",
        "eta_seconds",
        "error_message",
        "release_title",
        "created_at",
        "updated_at",
        "ready_at",
        "expires_at",
    ],
    {
        "job_id": {"type": "string", "pattern": "^job_[0-9]+_[0-9a-f]+$"},
        "movie_id": _nullable("integer"),
        "status": {"enum": JOB_STATUSES},
        "progress": {"type": "number", "minimum": 0, "maximum": 100},
        "playable": {"type": "boolean"},
        "bytes_done": {"type": "integer", "minimum": 0},
        "bytes_total": {"type": "integer", "minimum": 0},
        "speed_bps": {"type": "number", "minimum": 0},
        "eta_seconds": _nullable("number"),
        "error_message": _nullable("string"),
        "release_title": _nullable("string"),
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "ready_at": {"type": ["string", "null"], "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        # Beyond the contract: the API's code of a failed job's failure, and which release
        # of the movie this is (auto mode moves on to the next-best one).
        "error_code": {"enum": [*ERROR_CODES, None]},
        "attempt": {"type": "integer", "minimum": 1},
        # The mirror to R2 and the local copy's own deadline.
        "mirror": {"oneOf": [{"type": "null"}, _ref("Mirror")]},
        "local": {"type": "boolean", "description": "the local copy is there"},
        "local_expires_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "when the local copy goes (the film plays from R2 after)",
        },
    },
)
MIRROR = _obj(
    ["state", "bytes_done", "bytes_total", "error", "mirrored_at"],
    {
        "state": {"enum": MIRROR_STATES},
        "bytes_done": {"type": "integer", "minimum": 0},
        "bytes_total": {"type": "integer", "minimum": 0},
        "error": _nullable("string"),
        "mirrored_at": {"type": ["string", "null"], "format": "date-time"},
    },
)
JOB_REF = _obj(
    ["job_id", "status"], {"job_id": {"type": "string"}, "status": {"enum": JOB_STATUSES}}
)
JOB_LOG = _obj(
    ["job_id", "events"],
    {
        "job_id": {"type": "string"},
        "events": {
            "type": "array",
            "items": _obj(
                ["at", "kind", "message", "data"],
                {
                    "at": {"type": "string", "format": "date-time"},
                    "kind": {"type": "string"},
                    "message": {"type": "string"},
                    "data": {"type": "object"},
                },
            ),
        },
    },
)
PREFERENCES = _obj(
    ["audio_language", "subtitle_language"],
    {
        "audio_language": _nullable("string"),
        "subtitle_language": {
            "type": ["string", "null"],
            "description": 'a language code, or "off" for no subtitles',
        },
    },
    extra=False,
)
AUDIO_TRACK = _obj(
    ["index", "language", "title", "codec", "channels", "selected"],
    {
        "index": {"type": "integer"},
        "language": _nullable("string"),
        "title": _nullable("string"),
        "codec": {"type": "string"},
        "channels": _nullable("integer"),
        "selected": {"type": "boolean"},
    },
)
SUBTITLE_TRACK = _obj(
    ["id", "kind", "index", "codec", "language", "title", "default", "forced", "url"],
    {
        "id": {"type": "string", "description": "s<stream index> in the film, x<n> a file"},
        "kind": {
            "enum": ["text", "image"],
            "description": "image tracks (PGS, VobSub) have no URL: ?burn=<index> draws one in",
        },
        "index": _nullable("integer"),
        "codec": {"type": "string"},
        "language": _nullable("string"),
        "title": _nullable("string"),
        "default": {"type": "boolean"},
        "forced": {"type": "boolean"},
        "url": {"type": ["string", "null"], "description": "WebVTT, produced as it is read"},
    },
)
STREAM = _obj(
    [
        "job_id", "url", "kind", "plan", "reasons", "description", "content_type", "size",
        "duration", "media_url", "audio_tracks", "subtitles", "preferences", "expires_at",
    ],
    {
        "job_id": {"type": "string"},
        "url": {"type": "string", "description": "what this browser plays: the file or HLS"},
        "kind": {"enum": ["progressive", "file", "hls", "r2"]},
        "plan": {"enum": ["direct", "remux", "remux_audio", "transcode"]},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"},
        "content_type": {"type": "string"},
        "size": _nullable("integer"),
        "duration": _nullable("number"),
        "media_url": {"type": "string", "description": "the file itself, byte ranges"},
        "audio_tracks": {"type": "array", "items": AUDIO_TRACK},
        "subtitles": {"type": "array", "items": SUBTITLE_TRACK},
        "preferences": PREFERENCES,
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
    },
)  # fmt: skip
POSITION = _obj(
    ["job_id", "position"], {"job_id": {"type": "string"}, "position": {"type": "number"}}
)
ERROR = _obj(
    ["error", "code"],
    {"error": {"type": "string", "minLength": 1}, "code": {"enum": ERROR_CODES}},
    extra=False,
)

PAGE = {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}
MOVIE_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
CAPABILITIES = {
    "name": "capabilities",
    "in": "query",
    "description": "JSON: what the browser measured it plays (web/static/js/capabilities.js); "
    "without it the User-Agent's family decides",
    "schema": {"type": "string"},
}


def spec(server_url: str = "/") -> S:
    tmdb = _errors(400, 401, 429, 500, 502)  # 500: TMDB out of reach (the contract)
    paths: S = {
        "/search": {
            "get": {
                "summary": "Search TMDB for movies",
                "parameters": [
                    {
                        "name": "query",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    },
                    PAGE,
                ],
                "responses": {"200": _json(_ref("MovieList"), "Movies"), **tmdb},
            }
        },
        "/popular": {
            "get": {
                "summary": "Popular movies",
                "parameters": [PAGE],
                "responses": {"200": _json(_ref("MovieList"), "Movies"), **tmdb},
            }
        },
        "/top": {
            "get": {
                "summary": "Top rated movies",
                "parameters": [PAGE],
                "responses": {"200": _json(_ref("MovieList"), "Movies"), **tmdb},
            }
        },
        "/movies/{id}": {
            "get": {
                "summary": "Movie details with cast, crew and the state of its job",
                "parameters": [MOVIE_ID],
                "responses": {
                    "200": _json(_ref("MovieDetails"), "Details"),
                    **_errors(400, 401, 404, 500, 502),
                },
            }
        },
        "/movies/{id}/similar": {
            "get": {
                "summary": "Similar movies",
                "parameters": [MOVIE_ID, PAGE],
                "responses": {
                    "200": _json(_ref("MovieList"), "Movies"),
                    **_errors(400, 401, 404, 500, 502),
                },
            }
        },
        "/movies/{id}/releases": {
            "get": {
                "summary": "Usenet releases of a movie, best first (by score), with the reasons",
                "parameters": [
                    MOVIE_ID,
                    {
                        "name": "quality_preference",
                        "in": "query",
                        "schema": {"enum": ["720p", "1080p", "4K"]},
                    },
                    CAPABILITIES,
                ],
                "responses": {
                    "200": _json(_ref("Releases"), "Releases"),
                    **_errors(400, 401, 404, 429, 500, 502),
                },
            }
        },
        "/movies/{id}/fetch": {
            "post": {
                "summary": "Watch: download the best (auto) or a chosen (manual) release",
                "parameters": [MOVIE_ID, CAPABILITIES],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": _obj(
                                [],
                                {
                                    "mode": {"enum": ["auto", "manual"]},
                                    "release_id": {"type": "string"},
                                    "quality_preference": {"enum": ["720p", "1080p", "4K"]},
                                },
                                extra=False,
                            )
                        }
                    },
                },
                "responses": {
                    "202": _json(_ref("JobRef"), "A new job"),
                    "200": _json(_ref("JobRef"), "The movie's active job"),
                    **_errors(400, 401, 403, 404, 429, 500, 502),
                },
            }
        },
        "/movies/{id}/stream": {
            "get": {
                "summary": "Where and how this browser plays a movie (a movie id or a job id)",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    CAPABILITIES,
                    {
                        "name": "audio",
                        "in": "query",
                        "description": "the audio stream to play (an index of audio_tracks)",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    {
                        "name": "burn",
                        "in": "query",
                        "description": "an image subtitle stream to draw into a transcode",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": _json(_ref("Stream"), "A URL a player can open"),
                    # 409: the job was deleted; 500/502: it failed (JOB_ERROR, USENET_ERROR...)
                    **_errors(400, 401, 404, 409, 500, 502),
                },
            }
        },
        "/jobs": {
            "post": {
                "summary": "Download an NZB given as a file or an indexer URL",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": _obj(["nzb"], {"nzb": {"type": "string", "format": "binary"}})
                        },
                        "application/json": {
                            "schema": _obj(["nzb_url"], {"nzb_url": {"type": "string"}})
                        },
                    },
                },
                "responses": {
                    "202": _json(_ref("JobRef"), "Queued"),
                    **_errors(400, 401, 403, 429, 502),
                },
            },
            "get": {
                "summary": "All jobs, most recently updated first",
                "parameters": [{"name": "status", "in": "query", "schema": {"enum": JOB_STATUSES}}],
                "responses": {
                    "200": _json(
                        _obj(["jobs"], {"jobs": {"type": "array", "items": _ref("Job")}}), "Jobs"
                    ),
                    **_errors(400, 401),
                },
            },
        },
        "/jobs/{job_id}": {
            "parameters": [JOB_ID],
            "get": {
                "summary": "One job",
                "responses": {"200": _json(_ref("Job"), "The job"), **_errors(400, 401, 404)},
            },
            "delete": {
                "summary": "Cancel a job and delete its files",
                "responses": {
                    "200": _json(_ref("Job"), "The deleted job"),
                    **_errors(400, 401, 403, 404),
                },
            },
        },
        "/jobs/{job_id}/keep": {
            "post": {
                "summary": "Keep a movie 24 h longer: every deadline, local and in R2, moves",
                "parameters": [JOB_ID],
                "responses": {
                    "200": _json(_ref("Job"), "The job with its new deadlines"),
                    **_errors(400, 401, 403, 404, 409),
                },
            }
        },
        "/jobs/{job_id}/log": {
            "get": {
                "summary": "The job's history: release chosen, failovers, repairs, retries",
                "parameters": [JOB_ID],
                "responses": {
                    "200": _json(_ref("JobLog"), "Oldest first"),
                    **_errors(400, 401, 404),
                },
            }
        },
        "/jobs/{job_id}/events": {
            "get": {
                "summary": "Server-Sent Events: a Job snapshot (event 'job') on every change",
                "parameters": [JOB_ID],
                "responses": {
                    "200": {
                        "description": "text/event-stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 401, 404),
                },
            }
        },
        "/preferences": {
            "get": {
                "summary": "The household's playback preferences",
                "responses": {"200": _json(_ref("Preferences"), "Preferences"), **_errors(401)},
            },
            "put": {
                "summary": "Change playback preferences (keys left out stay as they are)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _obj(
                                [],
                                {
                                    "audio_language": _nullable("string"),
                                    "subtitle_language": _nullable("string"),
                                },
                                extra=False,
                            )
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("Preferences"), "Saved"),
                    **_errors(400, 401),
                },
            },
        },
        "/jobs/{job_id}/position": {
            "parameters": [JOB_ID],
            "get": {
                "summary": "Saved watch position",
                "responses": {
                    "200": _json(_ref("Position"), "Seconds"),
                    **_errors(400, 401, 404),
                },
            },
            "put": {
                "summary": "Save the watch position ([retention] idle_hours count from here)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _obj(
                                ["position"], {"position": {"type": "number", "minimum": 0}}
                            )
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("Position"), "Saved"),
                    **_errors(400, 401, 403, 404),
                },
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Matinee",
            "version": "1",
            "description": "Movies on demand: browse, pick a release, play while it downloads.",
        },
        "servers": [{"url": server_url.rstrip("/") + "/" + API_PREFIX}],
        "security": [{"apiKey": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "matinee_session"},
            },
            "schemas": {
                "Movie": MOVIE,
                "MovieList": MOVIE_LIST,
                "MovieDetails": MOVIE_DETAILS,
                "JobStatus": JOB_STATUS,
                "Release": RELEASE,
                "Releases": RELEASES,
                "Job": JOB,
                "Mirror": MIRROR,
                "JobLog": JOB_LOG,
                "JobRef": JOB_REF,
                "Stream": STREAM,
                "Preferences": PREFERENCES,
                "Position": POSITION,
                "Error": ERROR,
            },
        },
    }
