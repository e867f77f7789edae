"""The fuzz harnesses in CI: every corpus file replayed through its harness (the seeds and every crash
a campaign found, minimised), then a short hypothesis run per harness over mutated seeds and random
bytes. The campaign itself is bench/fuzz.py (docs/fuzzing.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harnesses import CARD_STATES, HARNESSES, card_input
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = Path(__file__).parent / "corpus"
#: Examples per harness in the hypothesis run: the whole replay stays well under a minute.
EXAMPLES = 60


def corpus_files() -> list[tuple[str, Path]]:
    return [(folder.name, path) for folder in sorted(CORPUS.iterdir()) for path in sorted(folder.iterdir())]


def test_every_harness_has_a_corpus_and_every_corpus_a_harness() -> None:
    folders = {folder.name for folder in CORPUS.iterdir()}
    assert folders == set(HARNESSES)
    for name in HARNESSES:
        assert any(p.name.startswith("seed-") for p in (CORPUS / name).iterdir()), name


def test_corpus_stays_small() -> None:
    total = sum(path.stat().st_size for _, path in corpus_files())
    assert total < 512 * 1024, f"the fuzz corpus has grown to {total} bytes"


@pytest.mark.parametrize(("name", "path"), corpus_files(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_corpus_input_keeps_the_contract(name: str, path: Path) -> None:
    HARNESSES[name].target(path.read_bytes())


def _mutate(seed: bytes, edits: list[tuple[int, int, int, bytes]]) -> bytes:
    data = bytearray(seed)
    for kind, at, length, chunk in edits:
        at = at % (len(data) + 1)
        if kind == 0 and at < len(data):
            data[at] ^= 1 << (length % 8)  # flip one bit
        elif kind == 1:
            data[at:at] = chunk  # insert
        elif kind == 2:
            del data[at : at + length]  # delete
        elif kind == 3:
            data[at : at + len(chunk)] = chunk  # overwrite
        elif kind == 4:
            del data[at:]  # truncate
        elif kind == 5 and at < len(data):
            data[at] = (0x00, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0xFF)[length % 8]  # an interesting byte
    return bytes(data)


_EDIT = st.tuples(st.integers(0, 5), st.integers(0, 1 << 16), st.integers(0, 64), st.binary(max_size=8))


def inputs(name: str) -> st.SearchStrategy[bytes]:
    seeds = [p.read_bytes() for p in sorted((CORPUS / name).iterdir())]
    mutated = st.builds(_mutate, st.sampled_from(seeds), st.lists(_EDIT, max_size=6))
    return st.one_of(mutated, st.binary(max_size=512))


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_mutated_inputs_keep_the_contract(name: str) -> None:
    HARNESSES[name].setup()

    @settings(max_examples=EXAMPLES, database=None)
    @given(inputs(name))
    def run(data: bytes) -> None:
        HARNESSES[name].target(data)

    run()


@settings(max_examples=EXAMPLES, database=None)
@given(st.sampled_from(CARD_STATES),
       st.lists(st.tuples(st.integers(0, 255), st.binary(min_size=4, max_size=40)), max_size=6))
def test_random_commands_in_every_card_state_get_a_status_word(
    state: str, commands: list[tuple[int, bytes]]
) -> None:
    HARNESSES["virtual_card"].target(card_input(state, commands))


# --- what a byte fuzzer rarely builds: deep nesting, huge numbers, NUL and lone surrogates ------------

DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE = b"9" * 100_000
HOSTILE_TEXT = [
    "\x00", "\ud800", "\udcff", "a\nb", "\u2028", "x" * 70_000, "../../../../dev/zero", "/dev/zero",
]


@pytest.mark.parametrize("document", [DEEP, HUGE, b'{"a": ' + DEEP + b"}", b'{"a": ' + HUGE + b"}"])
@pytest.mark.parametrize("name", ["record", "card_image", "print_job"])
def test_deep_or_huge_json_keeps_the_contract(name: str, document: bytes) -> None:
    if name == "record":
        for kind in range(3):
            HARNESSES[name].target(bytes((kind,)) + document)
    else:
        HARNESSES[name].target(document)


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_text_in_every_record_field_keeps_the_contract(text: str) -> None:
    from world import record

    base = record().to_mapping()
    for field in [*base, text]:
        mapping = dict(base, **{field: text})
        HARNESSES["record"].target(b"\x00" + json.dumps(mapping).encode())
        HARNESSES["record"].target(b"\x01" + json.dumps(mapping).encode() + b"\n")
        HARNESSES["print_job"].target(json.dumps(mapping).encode())


_ANY_CHARACTER = st.characters(codec=None, categories=None)
_VALUES = st.one_of(
    st.text(_ANY_CHARACTER, max_size=40), st.integers(), st.floats(), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=EXAMPLES, database=None)
@given(st.dictionaries(st.text(_ANY_CHARACTER, max_size=30), _VALUES, max_size=30))
def test_any_mapping_as_a_record_keeps_the_contract(values: dict[str, object]) -> None:
    from contract import parse

    from ektp_card.lds.record import record_from_mapping

    parse(record_from_mapping, values, Path("/nonexistent"))
