"""The station's web application: pages over the library, one card operation at a time per reader.

Server-rendered HTML (Jinja2) with a little JavaScript from ``/static`` for live status; every page works
without it. Requests run card operations in worker threads, never on the event loop.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ektp_card import errors
from ektp_card._station.desk import DeskConfig, Jobs
from ektp_card._station.faces import FaceImageError, face_png
from ektp_card._station.i18n import language_of, translate
from ektp_card._station.security import COOKIE, SECURITY_HEADERS, Session, Sessions, csrf_ok
from ektp_card._station.slots import CardSlot, SlotBusy, SlotStatus
from ektp_card.lds.record import PersonalData
from ektp_card.pki.revocation import RevocationList
from ektp_card.pki.trust import TrustFolder, TrustStore
from ektp_card.verify.report import PassportReport, Terminal, Verdict, VerificationReport

log = logging.getLogger("ektp_card.station")

#: Bodies larger than this are refused before they are read (a batch file with inline images fits).
MAX_BODY = 64 * 1024 * 1024
#: A fingerprint template is a few hundred bytes; an upload of more is not one.
MAX_FINGERPRINT = 64 * 1024
#: Results kept per session, and for how long (seconds): long enough to look, not to collect.
KEEP_RESULTS, RESULT_SECONDS = 3, 15 * 60

VERDICT_KEYS = {
    Verdict.GENUINE: "genuine",
    Verdict.FORGED: "forged",
    Verdict.CLONED: "cloned",
    Verdict.REVOKED: "revoked",
    Verdict.HOLDER_MISMATCH: "holder_mismatch",
}


@dataclass(frozen=True)
class StationConfig:
    """What the station works with; everything but the slot is optional."""

    slot: CardSlot
    #: A folder is read again when a file in it changes (a new CRL counts without a restart).
    trust: TrustStore | TrustFolder | None = None
    terminal: Terminal | None = field(default=None, repr=False)
    revocations: RevocationList | None = None
    operator: str = "operator"
    demo: bool = False
    secure_cookie: bool = False
    #: The distribution desk's registry and keys; ``None``: the station has no desk pages.
    desk: DeskConfig | None = None

    def trust_store(self) -> TrustStore | None:
        """The trust store as the folder holds it now; :class:`~ektp_card.errors.PkiError` if the folder
        no longer loads."""
        return self.trust.store() if isinstance(self.trust, TrustFolder) else self.trust


@dataclass
class ClerkResult:
    """One verification as the clerk sees it: the report, or the reason it could not be read."""

    created: float
    report: VerificationReport | None = None
    problem: str | None = None
    face: bytes | None = field(default=None, repr=False)
    #: DG7's first displayed signature as PNG, when the card has one that decodes.
    signature: bytes | None = field(default=None, repr=False)


def _printed_rows(report: VerificationReport) -> list[tuple[str, str, bool]]:
    """(label key, value, whether the value is a catalogue key) for the printed fields."""
    if isinstance(report, PassportReport):
        doc = report.document
        if doc is None:
            return []
        names = ("document_type", "issuing_state", "document_number", "primary_identifier",
                 "secondary_identifier", "nationality", "date_of_birth", "sex", "date_of_expiry")
        return [(f"field.{n}", str(getattr(doc, n)), False) for n in names]
    personal = report.personal
    if personal is None:
        return []
    rows: list[tuple[str, str, bool]] = []
    for name in PersonalData.__dataclass_fields__:
        if name == "synthetic":
            continue
        value = getattr(personal, name)
        if name == "valid_until" and value is None:
            rows.append((f"field.{name}", "field.valid_for_life", True))
        elif isinstance(value, dt.date):
            rows.append((f"field.{name}", value.strftime("%d-%m-%Y"), False))
        else:
            rows.append((f"field.{name}", str(value), False))
    return rows


class Station:
    """The application's state: configuration, sessions, templates."""

    def __init__(self, config: StationConfig, sessions: Sessions | None = None) -> None:
        self.config = config
        self.sessions = sessions or Sessions()
        self.jobs = Jobs()
        self.env = Environment(
            loader=PackageLoader("ektp_card._station", "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
        )

    # --- rendering ---------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        session: Session | None = request.state.session
        language = session.language if session is not None else self.sessions.language

        def t(key: str, **kw: object) -> str:
            return translate(language, key, **kw)

        html = self.env.get_template(template).render(
            t=t, lang=language, session=session, config=self.config, csrf=session.csrf if session else "",
            path=request.url.path, status=self.slot_status(), **values,
        )
        return HTMLResponse(html, status_code=status_code)

    def slot_status(self) -> SlotStatus:
        """The reader's status; a reader that cannot even say is shown as unavailable."""
        try:
            return self.config.slot.status()
        except Exception:  # noqa: BLE001 - a page must render whatever the reader does
            log.debug("reader status failed", exc_info=True)
            return SlotStatus(False, problem="no answer from the reader")

    def message_page(self, request: Request, key: str, status_code: int, **values: object) -> HTMLResponse:
        return self.render(request, "message.html", status_code, message_key=key, message_values=values)

    def actor(self, session: Session) -> str:
        """Who did it, for the registry's audit trail: the operator and the station session."""
        return f"{self.config.operator}@station:{session.short}"

    # --- results -----------------------------------------------------------------------------------

    def keep(self, session: Session, result: ClerkResult) -> str:
        now = time.monotonic()
        for rid in [rid for rid, r in session.results.items()
                    if isinstance(r, ClerkResult) and now - r.created > RESULT_SECONDS]:
            del session.results[rid]
        while len(session.results) >= KEEP_RESULTS:
            session.results.pop(next(iter(session.results)))
        rid = secrets.token_urlsafe(12)
        session.results[rid] = result
        return rid

    def result(self, session: Session, rid: str) -> ClerkResult | None:
        result = session.results.get(rid)
        if not isinstance(result, ClerkResult) or time.monotonic() - result.created > RESULT_SECONDS:
            return None
        return result


# --- middleware ------------------------------------------------------------------------------------


class Guard(BaseHTTPMiddleware):
    """Sessions, body size limits and the security headers, for every request."""

    def __init__(self, app: Any, station: Station) -> None:
        super().__init__(app)
        self.station = station

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        station = self.station
        request.state.session = None
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            response: Response = station.message_page(request, "error.too_large", 413)
        elif request.url.path == "/open":
            response = await call_next(request)
        else:
            session = station.sessions.get(request.cookies.get(COOKIE))
            if session is None:
                response = station.message_page(request, "error.session", 403)
            else:
                request.state.session = session
                origin = request.headers.get("origin")
                if request.method == "POST" and origin is not None and origin != _origin(request):
                    response = station.message_page(request, "error.csrf", 403)
                else:
                    response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def card_problem(exc: Exception, *, wrong_can: str = "error.wrong_can") -> tuple[str, int] | None:
    """The message and HTTP status for a card operation that failed through what a user did (a busy
    reader, a refused CAN, a card taken away or missing); ``None`` for anything else."""
    if isinstance(exc, SlotBusy):
        return "reader.busy", 409
    if isinstance(exc, errors.PacePasswordError):
        return wrong_can, 400
    if isinstance(exc, errors.CardRemovedError):
        return "error.removed", 409
    if isinstance(exc, errors.NoCardError):
        return "error.no_card", 409
    return None


def _local(path: str) -> str:
    """``path`` when it is a page of this station, else the clerk's page: never a redirect elsewhere."""
    ok = path.startswith("/") and not path.startswith("//") and "\\" not in path and path.isprintable()
    return path if ok else "/clerk"


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


# --- routes ----------------------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


def _session(request: Request) -> Session:
    session: Session | None = request.state.session
    if session is None:  # the guard lets no request through without one
        raise HTTPException(403)
    return session


async def _form(request: Request, max_part: int = MAX_BODY) -> Any:
    """The submitted form, its CSRF token checked; :class:`HTTPException` 403 when it is wrong."""
    form = await request.form(max_files=2, max_fields=50, max_part_size=max_part)
    token = form.get("csrf")
    if not csrf_ok(_session(request), token if isinstance(token, str) else None):
        raise HTTPException(403, "csrf")
    return form


def build_app(config: StationConfig, sessions: Sessions | None = None) -> Starlette:
    """The station's ASGI application for ``config``."""
    station = Station(config, sessions)

    async def open_session(request: Request) -> Response:
        token = request.query_params.get("token", "")
        session = station.sessions.open(token)
        if session is None:
            return station.message_page(request, "error.session", 403)
        response = RedirectResponse("/clerk", status_code=303)
        response.set_cookie(COOKIE, session.sid, httponly=True, samesite="strict",
                            secure=config.secure_cookie, path="/")
        return response

    async def home(request: Request) -> Response:
        return RedirectResponse("/clerk", status_code=303)

    async def clerk(request: Request) -> Response:
        return station.render(request, "clerk.html", error_key=None, error_values={})

    async def status(request: Request) -> Response:
        return JSONResponse(config.slot.status().to_json())

    async def language(request: Request) -> Response:
        form = await _form(request)
        session = _session(request)
        session.language = language_of(str(form.get("lang", "")))
        return RedirectResponse(_local(str(form.get("back", "/clerk"))), 303)

    async def insert(request: Request) -> Response:
        form = await _form(request)
        slot = config.slot
        back = _local(str(form.get("back", "/clerk")))
        if slot.virtual:
            from ektp_card._station.slots import VirtualSlot

            assert isinstance(slot, VirtualSlot)  # noqa: S101 - virtual slots are VirtualSlot
            if form.get("action") == "remove":
                slot.remove()
            else:
                try:
                    slot.insert(str(form.get("card", "")))
                except ValueError:
                    return clerk_error(request, "error.no_card")
        return RedirectResponse(back, status_code=303)

    def clerk_error(request: Request, key: str, code: int = 400, **values: object) -> HTMLResponse:
        return station.render(request, "clerk.html", code, error_key=key, error_values=values)

    async def verify_ektp(request: Request) -> Response:
        form = await _form(request)
        session = _session(request)
        can = str(form.get("can", "")).strip()
        # Never echoed back: a form re-rendered after an error starts empty.
        if len(can) != 6 or not (can.isascii() and can.isdigit()):
            return clerk_error(request, "clerk.can.invalid")
        capture: bytes | None = None
        upload = form.get("fingerprint")
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(MAX_FINGERPRINT + 1)
            if len(data) > MAX_FINGERPRINT:
                return clerk_error(request, "clerk.fingerprint.too_large", 413)
            if data:
                capture = data
        if capture is not None:
            from ektp_card.lds.biometrics import MinutiaeRecord

            try:
                MinutiaeRecord.decode(capture)
            except errors.EktpError as exc:
                return clerk_error(request, "clerk.fingerprint.invalid", why=str(exc))
        return await _run_verification(request, session, lambda: _verify_card(config, can, capture))

    async def verify_passport(request: Request) -> Response:
        form = await _form(request)
        session = _session(request)
        from ektp_card.access import parse_mrz

        try:
            mrz = parse_mrz(str(form.get("mrz", "")).strip())
        except errors.MrzError as exc:
            return clerk_error(request, "clerk.mrz.invalid", why=str(exc))
        return await _run_verification(request, session, lambda: _verify_passport(config, mrz))

    async def _run_verification(
        request: Request, session: Session, run: Callable[[], VerificationReport]
    ) -> Response:
        if config.trust is None:
            return clerk_error(request, "error.card", 409, why="the station has no trust folder (--trust)")
        try:
            report = await run_in_threadpool(run)
        except SlotBusy:
            return clerk_error(request, "reader.busy", 409)
        except errors.PacePasswordError as exc:
            if exc.password == "MRZ":  # noqa: S105 - the password type
                return clerk_error(request, "error.wrong_mrz")
            if exc.retries is not None:
                return clerk_error(request, "error.wrong_can.tries", retries=exc.retries)
            return clerk_error(request, "error.wrong_can")
        except errors.VerificationFailedError:
            return clerk_error(request, "error.wrong_mrz")
        except errors.CardRemovedError:
            return clerk_error(request, "error.removed", 409)
        except errors.NoCardError:
            return clerk_error(request, "error.no_card", 409)
        except errors.CardFileNotFoundError:
            return clerk_error(request, "error.not_ektp", 422)
        except errors.EktpError as exc:
            # Nothing the card said decided anything: the clerk sees why it could not be read.
            log.info("verification could not run: %s", exc)
            result = ClerkResult(time.monotonic(), problem=str(exc))
            return RedirectResponse(f"/clerk/result/{station.keep(session, result)}", status_code=303)
        face: bytes | None = None
        if report.face is not None:
            try:
                face = await run_in_threadpool(face_png, report.face.image)
            except FaceImageError as exc:
                log.info("face not shown: %s", exc)
        signature: bytes | None = None
        if report.signatures:
            try:
                signature = await run_in_threadpool(face_png, report.signatures[0].image)
            except FaceImageError as exc:
                log.info("signature not shown: %s", exc)
        result = ClerkResult(time.monotonic(), report=report, face=face, signature=signature)
        return RedirectResponse(f"/clerk/result/{station.keep(session, result)}", status_code=303)

    async def clerk_result(request: Request) -> Response:
        result = station.result(_session(request), request.path_params["rid"])
        if result is None:
            return station.message_page(request, "error.result_gone", 404)
        report = result.report
        return station.render(
            request, "result.html", result=result, report=report,
            verdict_key=None if report is None else VERDICT_KEYS[report.verdict],
            rows=[] if report is None else _printed_rows(report),
            synthetic=bool(report is not None and report.personal is not None and report.personal.synthetic),
            rid=request.path_params["rid"],
        )

    async def clerk_face(request: Request) -> Response:
        result = station.result(_session(request), request.path_params["rid"])
        if result is None or result.face is None:
            raise HTTPException(404)
        return Response(result.face, media_type="image/png")

    async def clerk_signature(request: Request) -> Response:
        result = station.result(_session(request), request.path_params["rid"])
        if result is None or result.signature is None:
            raise HTTPException(404)
        return Response(result.signature, media_type="image/png")

    async def not_found(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 404
        if code == 403:
            return station.message_page(request, "error.csrf", 403)
        return station.message_page(request, "error.not_found", code)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("station error on %s %s", request.method, request.url.path, exc_info=log.isEnabledFor(10))
        return station.message_page(request, "error.server", 500)

    routes = [
        Route("/open", open_session),
        Route("/", home),
        Route("/clerk", clerk),
        Route("/api/status", status),
        Route("/language", language, methods=["POST"]),
        Route("/reader", insert, methods=["POST"]),
        Route("/clerk/verify", verify_ektp, methods=["POST"]),
        Route("/clerk/passport", verify_passport, methods=["POST"]),
        Route("/clerk/result/{rid}", clerk_result),
        Route("/clerk/face/{rid}", clerk_face),
        Route("/clerk/signature/{rid}", clerk_signature),
        Mount("/static", StaticFiles(packages=[("ektp_card._station", "static")]), name="static"),
    ]
    if config.desk is not None:
        from ektp_card._station.desk_routes import desk_routes

        routes[-1:-1] = desk_routes(station, config.desk)
    from ektp_card._station.review import review_routes

    routes[-1:-1] = review_routes(station)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, station=station)],
        exception_handlers={HTTPException: not_found, 404: not_found, Exception: server_error},
    )
    app.state.station = station
    return app


def _verify_card(config: StationConfig, can: str, capture: bytes | None) -> VerificationReport:
    from ektp_card.verify.card import verify_card

    trust = config.trust_store()
    assert trust is not None  # noqa: S101 - checked by the caller
    with config.slot.use() as transport:
        terminal = config.terminal
        return verify_card(transport, can, trust, terminal=terminal, revocations=config.revocations,
                           fingerprint=capture if terminal is not None else None)


def _verify_passport(config: StationConfig, mrz: Any) -> VerificationReport:
    from ektp_card.verify.passport import verify_passport

    trust = config.trust_store()
    assert trust is not None  # noqa: S101 - checked by the caller
    with config.slot.use() as transport:
        return verify_passport(transport, mrz, trust)


__all__ = ["ClerkResult", "Station", "StationConfig", "build_app", "card_problem"]
