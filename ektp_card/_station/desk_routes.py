"""The desk's routes (see :mod:`ektp_card._station.desk`): every action a form posts, each checked
before anything changes, each refusal one message in the page."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ektp_card import errors
from ektp_card._station.desk import (
    BATCH_SUFFIXES,
    SERIAL,
    BatchJob,
    DeskConfig,
    build_report,
    card_counts,
    pending_cards,
    preview,
    report_charts,
)
from ektp_card._station.slots import SlotBusy
from ektp_card.desk.registry import CardRow, CardState
from ektp_card.pki.signer import write_file

if TYPE_CHECKING:
    from ektp_card._station.app import Station

log = logging.getLogger("ektp_card.station.desk")

MAX_BATCH = 64 * 1024 * 1024
#: Life-cycle actions: the field each needs (``None``: none) and the registry call.
ACTIONS = ("activate", "lost", "damaged", "revoke", "replace")
_FIELDS = {"lost": "police_report", "damaged": "surrendered", "revoke": "reason", "replace": "new_serial"}


def desk_routes(station: Station, desk: DeskConfig) -> list[Route]:
    """The desk's routes for ``station``."""
    from ektp_card._station.app import MAX_FINGERPRINT, _form, _session, card_problem

    def page(request: Request, template: str, code: int = 200, **values: Any) -> Response:
        return station.render(request, template, code, desk=desk, **values)

    def overview(
        request: Request,
        code: int = 200,
        message_key: str | None = None,
        message_values: dict[str, object] | None = None,
        found: list[CardRow] | None = None,
        query: str = "",
    ) -> Response:
        with desk.open() as registry:
            counts = card_counts(registry, desk.desk)
            pending = pending_cards(registry, desk.desk)
        batches = (
            sorted(
                (p for p in desk.batches.glob("*") if p.suffix in BATCH_SUFFIXES),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            )
            if desk.batches.is_dir()
            else []
        )
        running = station.jobs.running()
        return page(
            request,
            "desk.html",
            code,
            counts=counts,
            pending=pending,
            running=running,
            batches=[p.stem for p in batches[:10]],
            message_key=message_key,
            message_values=message_values or {},
            found=found,
            query=query,
        )

    async def home(request: Request) -> Response:
        query = request.query_params.get("q", "").strip()
        if not query:
            return await run_in_threadpool(overview, request)
        found = await run_in_threadpool(_lookup, desk, query)
        if len(found) == 1:
            return RedirectResponse(f"/desk/card/{found[0].serial}", status_code=303)
        key = None if found else "desk.lookup.none"
        return await run_in_threadpool(overview, request, 200, key, {"query": query}, found, query)

    async def upload(request: Request) -> Response:
        form = await _form(request, MAX_BATCH)
        upload = form.get("batch")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return overview(request, 400, "desk.upload.empty")
        suffix = "." + upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
        if suffix not in BATCH_SUFFIXES:
            return overview(request, 400, "desk.upload.kind")
        data = await upload.read(MAX_BATCH + 1)
        if len(data) > MAX_BATCH:
            return overview(request, 413, "error.too_large")
        # Named by its content, as `ektp desk issue` names a batch: the same file uploaded again is the
        # same batch and resumes.
        bid = hashlib.sha256(data).hexdigest()[:16]
        path = desk.batches / f"{bid}{suffix}"
        if not path.exists():
            await run_in_threadpool(write_file, path, data, private=True)
        return RedirectResponse(f"/desk/batch/{bid}", status_code=303)

    def batch_page(request: Request, bid: str, code: int = 200, message_key: str | None = None) -> Response:
        path = desk.batch_file(bid)
        if path is None:
            return station.message_page(request, "batch.unknown", 404)
        try:
            checked = preview(desk, path, bid)
        except errors.RecordError as exc:
            return overview(request, 400, "error.card", {"why": str(exc)})
        job = station.jobs.get(bid)
        return page(
            request,
            "batch.html",
            code,
            bid=bid,
            preview=checked,
            job=job,
            progress=None if job is None else job.to_json(),
            message_key=message_key,
            message_values={},
            can_issue=desk.issuance is not None and desk.cards is not None,
        )

    async def batch(request: Request) -> Response:
        return await run_in_threadpool(batch_page, request, request.path_params["bid"])

    async def issue(request: Request) -> Response:
        await _form(request)
        bid = request.path_params["bid"]
        path = desk.batch_file(bid)
        if path is None:
            return station.message_page(request, "batch.unknown", 404)
        if desk.issuance is None or desk.cards is None:
            return await run_in_threadpool(batch_page, request, bid, 409, "batch.cannot_issue")
        checked = await run_in_threadpool(preview, desk, path, bid)
        job = BatchJob(desk, path, bid, station.actor(_session(request)), checked.names)
        if not station.jobs.start(job):
            return await run_in_threadpool(batch_page, request, bid, 409, "batch.busy")
        return RedirectResponse(f"/desk/batch/{bid}", status_code=303)

    async def cancel(request: Request) -> Response:
        await _form(request)
        job = station.jobs.get(request.path_params["bid"])
        if job is not None:
            job.cancel.set()
        return RedirectResponse(f"/desk/batch/{request.path_params['bid']}", status_code=303)

    async def progress(request: Request) -> Response:
        job = station.jobs.get(request.path_params["bid"])
        return JSONResponse(None if job is None else job.to_json())

    def print_queue_page(request: Request) -> Response:
        from ektp_card.desk.batch import PrintedCard, VirtualCardDir

        with desk.open() as registry:
            pending = pending_cards(registry, desk.desk)
        jobs: list[tuple[CardRow, PrintedCard | None]] = []
        for row in pending:
            printed = None
            if isinstance(desk.cards, VirtualCardDir):
                try:
                    printed = PrintedCard.load(desk.cards.print_path(row.serial))
                except (OSError, ValueError, KeyError, TypeError):
                    printed = None
            jobs.append((row, printed))
        return page(request, "print.html", jobs=jobs)

    async def print_queue(request: Request) -> Response:
        return await run_in_threadpool(print_queue_page, request)

    def handover_page(
        request: Request,
        code: int = 200,
        message_key: str | None = None,
        message_values: dict[str, object] | None = None,
        ok: bool = False,
    ) -> Response:
        with desk.open() as registry:
            pending = pending_cards(registry, desk.desk)
        return page(
            request,
            "handover.html",
            code,
            pending=pending,
            message_key=message_key,
            message_values=message_values or {},
            ok=ok,
            ready=station.config.trust is not None and station.config.terminal is not None,
            chosen=request.query_params.get("serial", ""),
        )

    async def handover_form(request: Request) -> Response:
        return await run_in_threadpool(handover_page, request)

    async def handover(request: Request) -> Response:
        form = await _form(request)
        config = station.config
        if config.trust is None or config.terminal is None:
            return handover_page(request, 409, "handover.needs")
        serial = str(form.get("serial", "")).strip().upper()
        can = str(form.get("can", "")).strip()
        if not SERIAL.fullmatch(serial):
            return handover_page(request, 400, "action.missing")
        if len(can) != 6 or not (can.isascii() and can.isdigit()):
            return handover_page(request, 400, "clerk.can.invalid")
        upload = form.get("fingerprint")
        finger = await upload.read(MAX_FINGERPRINT + 1) if isinstance(upload, UploadFile) else b""
        if not finger:
            return handover_page(request, 400, "handover.fingerprint.missing")
        if len(finger) > MAX_FINGERPRINT:
            return handover_page(request, 413, "clerk.fingerprint.too_large")
        try:
            result = await run_in_threadpool(
                _hand_over, station, desk, serial, can, finger, station.actor(_session(request))
            )
        except (SlotBusy, errors.EktpError) as exc:
            known = card_problem(exc)
            if known is not None:
                return handover_page(request, known[1], known[0])
            if isinstance(exc, errors.RegistryError):
                return handover_page(request, 409, "action.refused", {"why": str(exc)})
            return handover_page(request, 422, "error.card", {"why": str(exc)})
        if result.refusal is not None:
            why = "; ".join([result.refusal.value, *result.reasons])
            return handover_page(request, 200, "handover.refused", {"serial": serial, "why": why})
        return handover_page(request, 200, "handover.done", {"serial": serial}, ok=True)

    def card_page(
        request: Request,
        serial: str,
        code: int = 200,
        message_key: str | None = None,
        message_values: dict[str, object] | None = None,
        confirm: dict[str, str] | None = None,
    ) -> Response:
        with desk.open() as registry:
            row = registry.get(serial)
        if row is None:
            return station.message_page(request, "card.unknown", 404)
        return page(
            request,
            "card.html",
            code,
            row=row,
            message_key=message_key,
            message_values=message_values or {},
            confirm=confirm,
            actions=_allowed(row),
        )

    async def card(request: Request) -> Response:
        serial = request.path_params["serial"].upper()
        if not SERIAL.fullmatch(serial):
            return station.message_page(request, "card.unknown", 404)
        return await run_in_threadpool(card_page, request, serial)

    async def card_action(request: Request) -> Response:
        form = await _form(request)
        serial = request.path_params["serial"].upper()
        action = str(form.get("action", ""))
        if not SERIAL.fullmatch(serial) or action not in ACTIONS:
            return station.message_page(request, "card.unknown", 404)
        name = _FIELDS.get(action)
        value = "" if name is None else str(form.get(name, "")).strip()
        if name is not None and (not value or len(value) > 200 or not value.isprintable()):
            return await run_in_threadpool(card_page, request, serial, 400, "action.missing")
        if action == "replace" and not SERIAL.fullmatch(value):
            return await run_in_threadpool(card_page, request, serial, 400, "action.missing")
        if form.get("confirm") != "yes":
            fields = {"action": action} | ({} if name is None else {name: value})
            return await run_in_threadpool(card_page, request, serial, 200, None, None, fields)
        try:
            row = await run_in_threadpool(_act, desk, serial, action, value, station.actor(_session(request)))
        except errors.RegistryError as exc:
            why: dict[str, object] = {"why": str(exc)}
            return await run_in_threadpool(card_page, request, serial, 409, "action.refused", why)
        return await run_in_threadpool(
            card_page, request, row.serial, 200, "action.done", {"serial": row.serial}
        )

    async def report(request: Request) -> Response:
        built = await run_in_threadpool(build_report, desk)
        charts = report_charts(built, desk.desk)
        pending = len([p for p in built.pending if p.desk == desk.desk])
        mine = [u for u in built.uncollected if u.desk == desk.desk]
        share = round(100 * mine[0].share) if mine else 0
        return page(
            request,
            "report.html",
            report=built,
            charts=charts,
            pending=pending,
            share=share,
            generated=time.strftime("%Y-%m-%d %H:%M"),
        )

    return [
        Route("/desk", home),
        Route("/desk/batch", upload, methods=["POST"]),
        Route("/desk/batch/{bid}", batch),
        Route("/desk/batch/{bid}/issue", issue, methods=["POST"]),
        Route("/desk/batch/{bid}/cancel", cancel, methods=["POST"]),
        Route("/desk/batch/{bid}/progress", progress),
        Route("/desk/print", print_queue),
        Route("/desk/handover", handover_form),
        Route("/desk/handover", handover, methods=["POST"]),
        Route("/desk/card/{serial}", card),
        Route("/desk/card/{serial}", card_action, methods=["POST"]),
        Route("/desk/report", report),
    ]


def _lookup(desk: DeskConfig, query: str) -> list[CardRow]:
    with desk.open() as registry:
        if query.isdigit() and len(query) == 16:
            return registry.cards_for(query)
        if SERIAL.fullmatch(query):
            row = registry.get(query.upper())
            return [] if row is None else [row]
    return []


def _allowed(row: CardRow) -> tuple[str, ...]:
    state = row.state
    if state is CardState.HANDED_OVER:
        return ("activate", "lost", "damaged", "revoke")
    if state is CardState.ACTIVE:
        return ("lost", "damaged", "revoke")
    if state is CardState.PERSONALISED:
        return ("revoke",)
    if state in (CardState.LOST, CardState.DAMAGED, CardState.REVOKED):
        return ("replace",)
    return ()


def _act(desk: DeskConfig, serial: str, action: str, value: str, actor: str) -> CardRow:
    with desk.open() as registry:
        where = {"desk": desk.desk, "actor": actor}
        if action == "activate":
            return registry.activate(serial, **where)
        if action == "lost":
            return registry.report_lost(serial, value, **where)
        if action == "damaged":
            return registry.report_damaged(serial, surrendered=True, **where)
        if action == "revoke":
            return registry.revoke(serial, value, **where)
        return registry.replace(serial, value.upper(), **where)


def _hand_over(station: Station, desk: DeskConfig, serial: str, can: str, finger: bytes, actor: str) -> Any:
    from ektp_card.desk.handover import hand_over

    config = station.config
    trust = config.trust_store()
    assert trust is not None and config.terminal is not None  # noqa: S101 - checked by the caller
    with config.slot.use() as transport, desk.open() as registry:
        return hand_over(
            transport,
            registry,
            serial,
            can,
            trust,
            config.terminal,
            finger,
            desk=desk.desk,
            actor=actor,
        )


__all__ = ["ACTIONS", "desk_routes"]
