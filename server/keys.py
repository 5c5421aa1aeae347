"""Every typed application and request key in one place, so handlers find shared things by
name. A leaf: the services' classes are imported for typing only, so any layer may import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import aiohttp

    from server.config.settings import Settings
    from server.discovery.service import Discovery
    from server.http.costs import CostLimiter
    from server.http.credentials import CredentialsWatch
    from server.http.health import R2Watch, UsenetWatch
    from server.http.login_limit import LoginLimiter
    from server.http.sessions import ActiveSession, Sessions
    from server.jobs.manager import JobManager
    from server.metrics import Metrics
    from server.mirror.retention import Retention
    from server.mirror.service import Mirror
    from server.playback.service import Playback
    from server.store.db import Store
    from server.ui.images import ImageCache

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORE: web.AppKey[Store] = web.AppKey("store")
JOBS: web.AppKey[JobManager] = web.AppKey("jobs")
MIRROR: web.AppKey[Mirror] = web.AppKey("mirror")  # uploads to R2, presigned links
RETENTION: web.AppKey[Retention] = web.AppKey("retention")  # the deletion timers
PLAYBACK: web.AppKey[Playback] = web.AppKey("playback")  # probes, HLS sessions, subtitles
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")  # outgoing (indexers, TMDB)
SECRET: web.AppKey[bytes] = web.AppKey("secret")  # signs media URLs
DISCOVERY: web.AppKey[Discovery] = web.AppKey("discovery")  # TMDB + indexers + ranking
LOGIN_LIMITER: web.AppKey[LoginLimiter] = web.AppKey("login_limiter")  # failed logins
CREDENTIALS: web.AppKey[CredentialsWatch] = web.AppKey("credentials")  # password, epoch
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")  # login sessions (in the store)
IMAGES: web.AppKey[ImageCache] = web.AppKey("images")  # posters and photos cached on disk
#: Trusted proxies already warned about for sending no X-Forwarded-For.
PROXIES_WARNED: web.AppKey[set[str]] = web.AppKey("proxies_warned")
EVENT_STREAMS: web.AppKey[dict[str, int]] = web.AppKey("event_streams")  # open, per client
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")  # Prometheus, one registry per app
USENET_WATCH: web.AppKey[UsenetWatch] = web.AppKey("usenet_watch")  # for /api/ready
R2_WATCH: web.AppKey[R2Watch] = web.AppKey("r2_watch")  # for /api/ready
CSP: web.AppKey[str] = web.AppKey("csp")  # the pages' Content-Security-Policy
DEMO: web.AppKey[bool] = web.AppKey("demo")  # MATINEE_DEMO=1: stand-in services; pages say so

# Per request, set by the auth middleware when a session cookie authenticated the request.
SESSION: web.RequestKey[ActiveSession] = web.RequestKey("session")
CSRF_TOKEN: web.RequestKey[str] = web.RequestKey("csrf")  # the session's token, for forms
#: Who is asking (an API key or a session, by a hash), for the limits on costly requests.
CALLER: web.RequestKey[str] = web.RequestKey("caller")
COSTS: web.AppKey[CostLimiter] = web.AppKey("costs")
