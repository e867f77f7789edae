"""Who may use the station: a token printed at start opens a session; every request needs it.

The token in the printed URL is exchanged once (``/open?token=...``) for a session cookie (HttpOnly,
SameSite=Strict, Secure under TLS) and the browser is sent on without it, so it never stays in the
address bar or the history. Every other request without a live session is refused. Each session has
its own CSRF token, which every state-changing form carries; the Origin header, when the browser sends
one, must be the station's own. Pages carry a Content-Security-Policy that allows no inline script.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

#: The session cookie's name.
COOKIE = "ektp_station"
#: A session idles out after this long (seconds): a clerk's shift, not forever.
IDLE_SECONDS = 8 * 3600

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: Headers on every answer: no inline script, no framing, no sniffing, nothing cached, no referrer
#: to other sites.
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on form posts.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass
class Session:
    """One browser's session: its id (the cookie), its CSRF token, its language and what it saw."""

    sid: str
    csrf: str
    language: str
    last_seen: float
    #: Recent verification results by id, newest last (kept for display only, dropped after a while).
    results: dict[str, object] = field(default_factory=dict)

    @property
    def short(self) -> str:
        """A short, non-secret name of the session for the audit trail."""
        return self.sid[:6]


class Sessions:
    """The station's sessions, in memory: a restart logs everyone out, which is the point."""

    def __init__(self, token: str | None = None, *, language: str = "id") -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.language = language
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token: str) -> Session | None:
        """A new session for the holder of the start token, else ``None``."""
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(sid, csrf, self.language, time.monotonic())
        with self._lock:
            self._by_id[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._by_id.get(sid)
            if session is None:
                return None
            if now - session.last_seen > IDLE_SECONDS:
                del self._by_id[sid]
                return None
            session.last_seen = now
            return session


def csrf_ok(session: Session, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(submitted.encode(), session.csrf.encode())


__all__ = ["COOKIE", "CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "Session", "Sessions", "csrf_ok"]
