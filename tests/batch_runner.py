"""A batch issued in a process that kills itself: the crash tests of tests/test_desk_batch.py run this
file as a script. It issues a batch with a hook that counts every event of the run (each APDU, each
registry change before and after, each file written) and sends itself SIGKILL at event N; the next run
must resume to the same end state as a run that was never interrupted.

``python tests/batch_runner.py BATCH TARGET CARDS PKI DESK KILL_AT`` prints the summary and the events
seen as JSON (KILL_AT 0: never). :func:`runner` does the same in the calling process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fixtures.desk import load_issuance

from ektp_card.desk.batch import VirtualCardDir, issue_batch
from ektp_card.desk.registry import open_registry
from ektp_card.virtual import VirtualCard

MASTER = bytes.fromhex("303132333435363738393A3B3C3D3E3F")
ACTOR = "officer-1"


def runner(
    batch: Path, target: str, cards: Path, pki: Path, desk: str, kill_at: int | None
) -> dict[str, Any]:
    """Issue ``batch``, counting events; SIGKILL this process at event ``kill_at``. Returns the summary
    and the names of the events seen."""
    from ektp_card.desk import batch as batch_module

    events: list[str] = []

    def tick(name: str) -> None:
        events.append(name)
        if kill_at is not None and len(events) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def around(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            tick(f"before {name}")
            result = call(*args, **kwargs)
            tick(f"after {name}")
            return result
        return wrapped

    batch_module.write_private_atomic = around("print job", batch_module.write_private_atomic)  # type: ignore[assignment]
    VirtualCard.save = around("card image", VirtualCard.save)  # type: ignore[method-assign]

    class Station(VirtualCardDir):
        def blank_card(self, cancel: Any, notice: Any) -> Any:
            context = super().blank_card(cancel, notice)
            blank = context.__enter__()
            transceive = blank.transport.transceive

            def counted(command: bytes) -> bytes:
                tick("apdu")
                return transceive(command)

            blank.transport.transceive = counted
            return _Entered(context, blank)

    registry = open_registry(target)
    for name in ("reserve", "confirm", "spoil"):
        setattr(registry, name, around(name, getattr(registry, name)))
    issuance = load_issuance(pki, MASTER)
    summary = issue_batch(batch, registry, Station(cards, MASTER), issuance, desk=desk, actor=ACTOR)
    registry.close()
    return {"summary": summary.to_json(), "events": events}


class _Entered:
    def __init__(self, context: Any, value: Any) -> None:
        self.context, self.value = context, value

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, *exc: Any) -> Any:
        return self.context.__exit__(*exc)


if __name__ == "__main__":
    batch_arg, target_arg, cards_arg, pki_arg, desk_arg, kill_arg = sys.argv[1:7]
    kill = int(kill_arg) or None
    data = runner(Path(batch_arg), target_arg, Path(cards_arg), Path(pki_arg), desk_arg, kill)
    print(json.dumps(data))
