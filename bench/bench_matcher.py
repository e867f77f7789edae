"""Accuracy and speed of the fingerprint matcher (ektp_card.verify.matcher) on synthetic fingers.

Usage: .venv/bin/python bench/bench_matcher.py [--fingers 100] [--impressions 5] [--seed 2024]
           [--impostors pairs|all] [--jobs 1] [--threshold T] [--min-paired N] [--enrolment]
           [--rotation 15] [--translation 20] [--missing 0.15] [--spurious 4] [--position-noise 2]
           [--angle-noise 4] [--type-flip 0.05]

The data set comes from ektp_card.lds.synthetic with one seeded generator: ``--fingers`` fingers
(make_finger), then ``--impressions`` captures of each (impression, default ImpressionParams unless
overridden). With ``--enrolment`` the first capture of each finger is a careful enrolment capture
(synthetic.ENROLMENT), as on the card, and genuine pairs are that capture against the others.

Genuine pairs: every pair of captures of the same finger. Impostor pairs: with ``--impostors pairs``
(the default) one comparison per pair of different fingers, captures chosen round robin; with
``--impostors all`` every pair of captures of different fingers.

Prints FAR and FRR (decision: score >= threshold and at least min-paired minutiae paired) over a
threshold sweep, the equal error rate, the score distributions, and the median time per comparison.

With ``--compact`` the same comparisons run a second time on the templates in the ISO/IEC 19794-2
compact card format (ektp_card.lds.compact: 0.1 mm, 5.625 degrees, at most 64 minutiae), as the chip
compares them in on-card comparison, and both matchers are printed side by side. ``--count-ops N``
counts, over the first N genuine and N impostor comparisons, the operations each comparison executes:
Python bytecode instructions in the matcher and calls of math functions (sqrt, atan2, sin, cos, ...),
the work a card processor without a floating-point unit would emulate (docs/on-card-comparison.md
turns them into cycles).
"""

from __future__ import annotations

import argparse
import bisect
import random
import shlex
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from ektp_card.lds.biometrics import MinutiaeRecord
from ektp_card.lds.compact import compact_from_record, record_from_compact
from ektp_card.lds.synthetic import ENROLMENT, ImpressionParams, impression, make_finger
from ektp_card.verify.matcher import DEFAULT_MIN_PAIRED, DEFAULT_THRESHOLD, MatcherConfig, match

SWEEP = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 15.0, 16.0, 18.0, 20.0, 25.0, 30.0, 40.0, 50.0)

# One comparison: (finger, capture) of the first template, (finger, capture) of the second.
Comparison = tuple[tuple[int, int], tuple[int, int]]
# Its outcome: score, paired minutiae, CPU seconds, wall seconds, minutiae counts of the two templates.
Outcome = tuple[float, int, float, float, int, int]


def make_dataset(
    seed: int, fingers: int, impressions: int, params: ImpressionParams, enrolment: bool
) -> list[list[MinutiaeRecord]]:
    """``fingers`` lists of ``impressions`` records, all drawn from one generator seeded with ``seed``."""
    rng = random.Random(seed)
    masters = [make_finger(rng) for _ in range(fingers)]
    data = []
    for finger in masters:
        captures = []
        for k in range(impressions):
            captures.append(impression(finger, rng, ENROLMENT if enrolment and k == 0 else params).record)
        data.append(captures)
    return data


def genuine_pairs(fingers: int, impressions: int, enrolment: bool) -> list[Comparison]:
    pairs = []
    for f in range(fingers):
        for i in range(impressions):
            for j in range(i + 1, impressions):
                if enrolment and i != 0:
                    continue
                pairs.append(((f, i), (f, j)))
    return pairs


def impostor_pairs(fingers: int, impressions: int, every: bool) -> list[Comparison]:
    pairs: list[Comparison] = []
    for f in range(fingers):
        for g in range(f + 1, fingers):
            if every:
                pairs.extend(((f, i), (g, j)) for i in range(impressions) for j in range(impressions))
            else:
                pairs.append(((f, (f + g) % impressions), (g, (f + 2 * g + 1) % impressions)))
    return pairs


_DATA: list[list[MinutiaeRecord]] = []
_CONFIG = MatcherConfig()


def _init(data: list[list[MinutiaeRecord]], config: MatcherConfig) -> None:
    global _DATA, _CONFIG
    _DATA, _CONFIG = data, config


def _run(chunk: Sequence[Comparison]) -> list[Outcome]:
    out = []
    for (f, i), (g, j) in chunk:
        a, b = _DATA[f][i], _DATA[g][j]
        cpu, wall = time.thread_time(), time.perf_counter()
        result = match(a, b, _CONFIG)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        out.append((result.score, result.paired, cpu, wall, len(a.minutiae), len(b.minutiae)))
    return out


def run_all(
    data: list[list[MinutiaeRecord]], config: MatcherConfig, comparisons: list[Comparison], jobs: int
) -> list[Outcome]:
    if jobs <= 1:
        _init(data, config)
        return _run(comparisons)
    size = max(1, len(comparisons) // (jobs * 8))
    chunks = [comparisons[k : k + size] for k in range(0, len(comparisons), size)]
    with ProcessPoolExecutor(jobs, initializer=_init, initargs=(data, config)) as pool:
        return [o for part in pool.map(_run, chunks) for o in part]


def compact_dataset(data: list[list[MinutiaeRecord]]) -> list[list[MinutiaeRecord]]:
    """Every record through the compact card format and back: what the chip compares."""
    return [[record_from_compact(compact_from_record(r), r.views[0].position) for r in captures]
            for captures in data]


def count_operations(a: MinutiaeRecord, b: MinutiaeRecord, config: MatcherConfig) -> tuple[int, int]:
    """(bytecode instructions executed in the matcher module, calls of math functions) for one
    comparison: a machine-independent measure of its cost."""
    import math

    from ektp_card.verify import matcher

    source = matcher.__file__
    math_functions = {getattr(math, n) for n in dir(math) if callable(getattr(math, n))}
    counts = [0, 0]

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != source:
            return None
        frame.f_trace_opcodes = True
        if event == "opcode":
            counts[0] += 1
        return trace

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and arg in math_functions:
            counts[1] += 1

    sys.settrace(trace)
    sys.setprofile(profile)
    try:
        match(a, b, config)
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    return counts[0], counts[1]


def operations_table(
    sets: dict[str, list[list[MinutiaeRecord]]], config: MatcherConfig, pairs: dict[str, list[Comparison]],
    n: int,
) -> None:
    print(f"operations per comparison (first {n} genuine and {n} impostor comparisons), median [max]:")
    print(f"{'matcher':10} {'pairs':9} {'bytecodes':>16} {'math calls':>14} {'minutiae':>9}")
    for name, data in sets.items():
        for kind, chosen in pairs.items():
            ops = [count_operations(data[f][i], data[g][j], config) for (f, i), (g, j) in chosen[:n]]
            sizes = [len(data[f][i].minutiae) + len(data[g][j].minutiae) for (f, i), (g, j) in chosen[:n]]
            codes, calls = [o[0] for o in ops], [o[1] for o in ops]
            print(f"{name:10} {kind:9} {statistics.median(codes):>9.0f} [{max(codes):>5}]"
                  f" {statistics.median(calls):>7.0f} [{max(calls):>4}] {statistics.median(sizes) / 2:>9.1f}")


def effective(outcomes: Iterable[Outcome], min_paired: int) -> list[float]:
    """Sorted scores, with -1 for comparisons that pair too few minutiae to ever be accepted."""
    return sorted(s if p >= min_paired else -1.0 for s, p, *_ in outcomes)


def rates(genuine: list[float], impostor: list[float], threshold: float) -> tuple[float, float]:
    """(FAR, FRR) in percent at ``threshold`` over sorted effective scores (see :func:`effective`)."""
    accepted = len(impostor) - bisect.bisect_left(impostor, threshold)
    rejected = bisect.bisect_left(genuine, threshold)
    return 100.0 * accepted / len(impostor), 100.0 * rejected / len(genuine)


def equal_error(genuine: list[float], impostor: list[float]) -> tuple[float, float, float, float]:
    """(EER %, its threshold, FAR %, FRR %) at the threshold where FAR and FRR are closest (ties:
    the lowest such threshold); candidates are the observed scores."""
    best = (float("inf"), 0.0, 0.0, 0.0)
    for t in sorted(set(genuine) | set(impostor) | {0.0}):
        if t < 0:
            continue
        far, frr = rates(genuine, impostor, t)
        if abs(far - frr) < best[0]:
            best = (abs(far - frr), t, far, frr)
    _, t, far, frr = best
    return (far + frr) / 2, t, far, frr


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    defaults = ImpressionParams()
    parser.add_argument("--fingers", type=int, default=100)
    parser.add_argument("--impressions", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--impostors", choices=("pairs", "all"), default="pairs")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--min-paired", type=int, default=DEFAULT_MIN_PAIRED)
    parser.add_argument("--enrolment", action="store_true")
    parser.add_argument("--rotation", type=float, default=defaults.rotation)
    parser.add_argument("--translation", type=float, default=defaults.translation)
    parser.add_argument("--missing", type=float, default=defaults.missing)
    parser.add_argument("--spurious", type=int, default=defaults.spurious)
    parser.add_argument("--position-noise", type=float, default=defaults.position_noise)
    parser.add_argument("--angle-noise", type=float, default=defaults.angle_noise)
    parser.add_argument("--type-flip", type=float, default=defaults.type_flip)
    parser.add_argument("--compact", action="store_true",
                        help="also compare the templates in the compact card format, side by side")
    parser.add_argument("--count-ops", type=int, default=0, metavar="N",
                        help="count the operations of N genuine and N impostor comparisons")
    args = parser.parse_args(argv)
    if args.fingers < 2 or args.impressions < 2:
        parser.error("need at least 2 fingers and 2 impressions")

    params = ImpressionParams(
        args.rotation,
        args.translation,
        args.missing,
        args.spurious,
        args.position_noise,
        args.angle_noise,
        args.type_flip,
    )
    config = MatcherConfig(threshold=args.threshold, min_paired=args.min_paired)
    data = make_dataset(args.seed, args.fingers, args.impressions, params, args.enrolment)
    gen_pairs = genuine_pairs(args.fingers, args.impressions, args.enrolment)
    imp_pairs = impostor_pairs(args.fingers, args.impressions, args.impostors == "all")
    started = time.perf_counter()
    outcomes = run_all(data, config, gen_pairs + imp_pairs, args.jobs)
    wall = time.perf_counter() - started
    genuine, impostor = outcomes[: len(gen_pairs)], outcomes[len(gen_pairs) :]

    print("command: " + shlex.join([".venv/bin/python", "bench/bench_matcher.py", *sys.argv[1:]]))
    counts = [len(c.minutiae) for captures in data for c in captures]
    print(
        f"data: {args.fingers} fingers x {args.impressions} impressions, seed {args.seed}, {params}"
        f"{', first capture ENROLMENT' if args.enrolment else ''}"
    )
    print(f"minutiae per template: mean {statistics.mean(counts):.1f}, min {min(counts)}, max {max(counts)}")
    print(f"comparisons: {len(genuine)} genuine, {len(impostor)} impostor ({args.impostors})")
    print(f"decision: score >= threshold and paired >= {args.min_paired}")
    print()
    gen_eff, imp_eff = effective(genuine, args.min_paired), effective(impostor, args.min_paired)
    print(f"{'threshold':>9}  {'FAR %':>8}  {'FRR %':>8}")
    for t in sorted(set(SWEEP) | {args.threshold}):
        far, frr = rates(gen_eff, imp_eff, t)
        mark = "  <- chosen" if t == args.threshold else ""
        print(f"{t:9.1f}  {far:8.4f}  {frr:8.4f}{mark}")
    eer, at, far, frr = equal_error(gen_eff, imp_eff)
    print()
    print(f"EER: {eer:.4f} % at threshold {at:.2f} (FAR {far:.4f} %, FRR {frr:.4f} %)")
    if imp_eff[-1] < gen_eff[0]:
        print(f"no error at any threshold above {imp_eff[-1]:.2f} up to {gen_eff[0]:.2f}")
    g_scores = [o[0] for o in genuine]
    i_scores = [o[0] for o in impostor]
    print(
        f"genuine scores: min {min(g_scores):.2f}, 1st percentile {percentile(g_scores, 0.01):.2f}, "
        f"median {statistics.median(g_scores):.2f}; paired median {statistics.median(o[1] for o in genuine)}"
    )
    print(
        f"impostor scores: max {max(i_scores):.2f}, 99.9th percentile {percentile(i_scores, 0.999):.2f}, "
        f"median {statistics.median(i_scores):.2f}; paired max {max(o[1] for o in impostor)}"
    )
    cpu = [o[2] * 1000 for o in outcomes]
    near_40 = [o[2] * 1000 for o in outcomes if 36 <= o[4] <= 44 and 36 <= o[5] <= 44]
    print(
        f"CPU time per comparison: median {statistics.median(cpu):.2f} ms, 90th percentile "
        f"{percentile(cpu, 0.9):.2f} ms; both templates 36-44 minutiae: median "
        f"{statistics.median(near_40):.2f} ms over {len(near_40)}"
    )
    print(
        f"wall time per comparison: median {statistics.median(o[3] * 1000 for o in outcomes):.2f} ms; "
        f"whole run {wall:.1f} s with {args.jobs} job(s)"
    )
    sets = {"DG3": data}
    if args.compact:
        compact = compact_dataset(data)
        sets["compact"] = compact
        c_out = run_all(compact, config, gen_pairs + imp_pairs, args.jobs)
        c_gen, c_imp = c_out[: len(gen_pairs)], c_out[len(gen_pairs) :]
        side_by_side(args, (genuine, impostor), (c_gen, c_imp), outcomes, c_out)
    if args.count_ops:
        operations_table(sets, config, {"genuine": gen_pairs, "impostor": imp_pairs}, args.count_ops)
    return 0


def side_by_side(
    args: argparse.Namespace,
    dg3: tuple[list[Outcome], list[Outcome]],
    compact: tuple[list[Outcome], list[Outcome]],
    dg3_all: list[Outcome],
    compact_all: list[Outcome],
) -> None:
    """FAR and FRR of the DG3 matcher and of the same matcher on compact templates, side by side."""
    print()
    print("DG3 templates (19794-2 records) against compact card templates (on-card comparison):")
    d_gen, d_imp = (effective(o, args.min_paired) for o in dg3)
    c_gen, c_imp = (effective(o, args.min_paired) for o in compact)
    print(f"{'threshold':>9}  {'DG3 FAR %':>9}  {'DG3 FRR %':>9}  {'compact FAR %':>13}"
          f"  {'compact FRR %':>13}")
    for t in sorted(set(SWEEP) | {args.threshold}):
        d_far, d_frr = rates(d_gen, d_imp, t)
        c_far, c_frr = rates(c_gen, c_imp, t)
        mark = "  <- chosen" if t == args.threshold else ""
        print(f"{t:9.1f}  {d_far:9.4f}  {d_frr:9.4f}  {c_far:13.4f}  {c_frr:13.4f}{mark}")
    for name, (gen, imp) in (("DG3", (d_gen, d_imp)), ("compact", (c_gen, c_imp))):
        eer, at, far, frr = equal_error(gen, imp)
        print(f"EER {name:8} {eer:.4f} % at threshold {at:.2f} (FAR {far:.4f} %, FRR {frr:.4f} %)")
    for name, outcomes in (("DG3", dg3_all), ("compact", compact_all)):
        cpu = [o[2] * 1000 for o in outcomes]
        print(f"CPU time per comparison, {name:8}: median {statistics.median(cpu):.2f} ms, 90th percentile "
              f"{percentile(cpu, 0.9):.2f} ms, max {max(cpu):.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
