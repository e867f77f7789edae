"""The security reviewer's page: the audit catalogue against the card on the reader.

Non-destructive by default; destructive tests (which may block or alter the card) only after an explicit
confirmation. The audit holds the reader for its whole run and runs in the background; the page follows
it and, at the end, shows each test's verdict and evidence, with the JSON and JUnit reports to download.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ektp_card import errors
from ektp_card._station.slots import CardSlot, SlotBusy
from ektp_card.apdu.transport import Transport
from ektp_card.audit.engine import AuditOptions, AuditReport, AuditTest, run_audit, select_tests

if TYPE_CHECKING:
    from ektp_card._station.app import Station

log = logging.getLogger("ektp_card.station.review")


class SlotTarget:
    """The card on the station's reader as an audit target (the caller holds the slot)."""

    def __init__(self, slot: CardSlot) -> None:
        self.slot = slot

    def describe(self) -> str:
        return f"card on the {self.slot.description}"

    @contextmanager
    def session(self) -> Iterator[Transport]:
        with self.slot.open() as transport:
            yield transport

    def uid(self, transport: Transport) -> bytes | None:
        return self.slot.uid(transport)


class AuditJob:
    """One audit running in the background."""

    def __init__(self, station: Station, options: AuditOptions, tests: tuple[AuditTest, ...]) -> None:
        self.id = secrets.token_urlsafe(12)
        self.station, self.options, self.tests = station, options, tests
        self.done = 0
        self.current: str | None = None
        self.report: AuditReport | None = None
        self.problem: str | None = None
        self.busy = False
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"audit-{self.id}", daemon=True)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def _progress(self, test: AuditTest) -> None:
        self.current = f"{test.id}: {test.title}"
        self.done += 1

    def _run(self) -> None:
        slot = self.station.config.slot
        try:
            with slot.hold():
                self.started.set()
                target = SlotTarget(slot)
                _check_can(target, self.options.can)
                self.report = run_audit(target, self.options, self.tests, progress=self._progress)
        except SlotBusy:
            self.busy = True
        except errors.PacePasswordError:
            self.problem = "wrong-can"
        except errors.EktpError as exc:
            self.problem = str(exc)
        except Exception:  # noqa: BLE001 - the page says it stopped; the log has the detail
            self.problem = "internal error (see the station's log with -vv)"
            log.error("audit failed", exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            self.started.set()

    def to_json(self) -> dict[str, Any]:
        state = "running" if self.running else ("busy" if self.busy else (
            "stopped" if self.problem else "finished"))
        return {"state": state, "done": self.done, "total": len(self.tests), "current": self.current,
                "problem": self.problem}


def _check_can(target: SlotTarget, can: str) -> None:
    """PACE once with the CAN before any test: with a wrong CAN every test would end in an error."""
    from ektp_card.session.card import CardSession, Credentials

    with target.session() as transport:
        session = CardSession(transport)
        session.discover()
        session.authenticate(Credentials(can=can))


def _try_can(slot: CardSlot, can: str) -> None:
    with slot.hold():
        _check_can(SlotTarget(slot), can)


def review_routes(station: Station) -> list[Route]:
    from ektp_card._station.app import _form, _session, card_problem

    jobs: dict[str, AuditJob] = {}

    def page(request: Request, code: int = 200, message_key: str | None = None,
             confirm: bool = False) -> Response:
        return station.render(request, "review.html", code, catalogue=select_tests(), message_key=message_key,
                              confirm=confirm)

    async def review(request: Request) -> Response:
        return page(request)

    async def run(request: Request) -> Response:
        form = await _form(request)
        can = str(form.get("can", "")).strip()
        if len(can) != 6 or not (can.isascii() and can.isdigit()):
            return page(request, 400, "clerk.can.invalid")
        destructive = form.get("destructive") == "yes"
        if destructive and form.get("confirm") != "yes":
            # Destructive tests may block the PIN or alter the card: say so, and ask once more.
            return page(request, 200, None, confirm=True)
        if any(j.running for j in jobs.values()):
            return page(request, 409, "reader.busy")
        config = station.config
        # The CAN first, in the request: a wrong one is said at once, and no test runs.
        try:
            await run_in_threadpool(_try_can, config.slot, can)
        except (SlotBusy, errors.EktpError) as exc:
            known = card_problem(exc, wrong_can="review.wrong_can")
            if known is not None:
                return page(request, known[1], known[0])
            log.info("review could not start: %s", exc)
            return page(request, 422, "review.no_start")
        try:
            trust = config.trust_store()
        except errors.EktpError as exc:
            log.info("review could not start: %s", exc)
            return page(request, 422, "review.no_start")
        options = AuditOptions(can=can, trust=trust, terminal=config.terminal, destructive=destructive)
        job = AuditJob(station, options, select_tests())
        job.thread.start()
        job.started.wait(5)
        if job.busy:
            return page(request, 409, "reader.busy")
        _session(request).results[f"audit:{job.id}"] = job
        jobs[job.id] = job
        return RedirectResponse(f"/review/{job.id}", status_code=303)

    def job_of(request: Request) -> AuditJob | None:
        job = _session(request).results.get(f"audit:{request.path_params['jid']}")
        return job if isinstance(job, AuditJob) else None

    async def result(request: Request) -> Response:
        job = job_of(request)
        if job is None:
            return station.message_page(request, "error.result_gone", 404)
        return station.render(request, "review_result.html", job=job, progress=job.to_json(),
                              report=job.report)

    async def progress(request: Request) -> Response:
        job = job_of(request)
        return JSONResponse(None if job is None else job.to_json())

    async def download(request: Request) -> Response:
        job = job_of(request)
        if job is None or job.report is None:
            return station.message_page(request, "error.result_gone", 404)
        kind = request.path_params["kind"]
        stamp = job.report.started.strftime("%Y%m%dT%H%M%S")
        if kind == "json":
            import json

            body = (json.dumps(job.report.to_json(), indent=2) + "\n").encode()
            media, name = "application/json", f"audit-{stamp}.json"
        elif kind == "xml":
            body, media, name = job.report.to_junit_xml(), "application/xml", f"audit-{stamp}.xml"
        else:
            return station.message_page(request, "error.not_found", 404)
        return Response(body, media_type=media,
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    return [
        Route("/review", review),
        Route("/review", run, methods=["POST"]),
        Route("/review/{jid}", result),
        Route("/review/{jid}/progress", progress),
        Route("/review/{jid}/report.{kind}", download),
    ]


__all__ = ["AuditJob", "SlotTarget", "review_routes"]
