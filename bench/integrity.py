"""Marketplace integrity: routing among 1,000 miners and verifying a day of receipts.

Run from the repository root::

    .venv/bin/python bench/integrity.py [--miners 1000 --decisions 2000 --jobs-per-day 17280]

In one invocation, each figure next to the same work without what integrity adds:

* **Routing decision** with ``--miners`` registered, connected miners (a realistic mix: a fifth
  of them full, a tenth without the job's class, some with recent incidents, a few blacklisted):
  :func:`validator.routing.route` — every miner weighed by reliability, skip reasons recorded,
  the decision serialised as the validator stores it — against a baseline that picks uniformly
  among the miners with a free executor and records nothing. p50/p95 over ``--decisions``.
* **Verifying a day of one miner's receipts**: ``--jobs-per-day`` jobs × 3 receipts (started,
  accepted, finished) in signed pages of 500, as a validator fetches them: parse each page, check
  the miner's page signature and both signatures of every receipt
  (:func:`protocol.receipts.verify_page`, :func:`~protocol.receipts.verify_receipt`), against
  parsing the same pages without any signature check. Receipts per second.

Pure CPU, no network, no database. Progress on stderr; figures, ratios and how to reproduce on
stdout, whose last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol.keys import Keypair  # noqa: E402
from protocol.messages import ClassCapacity, Manifest  # noqa: E402
from protocol.receipts import (  # noqa: E402
    ReceiptKind,
    ReceiptPage,
    ReceiptPayload,
    countersign,
    sign_page,
    sign_receipt,
    verify_page,
    verify_receipt,
)
from protocol.spec import ResourceLimits  # noqa: E402
from validator.miners import CapacityWatch, MinerConnection  # noqa: E402
from validator.reputation import Reputation  # noqa: E402
from validator.routing import route  # noqa: E402

CLASS = "cpu.small"
PAGE = 500


def log(message: str) -> None:
    print(f"[bench/integrity] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- routing ---------------------------------------------------------------------------------------


def make_miners(count: int, rng: random.Random) -> tuple[list[MinerConnection], Reputation]:
    validator, capacity = Keypair.generate(), CapacityWatch()
    reputation, now = Reputation(), time.time()
    miners = []
    for index in range(count):
        hotkey = f"{index:064x}"
        miner = MinerConnection(hotkey, "ws://127.0.0.1:9/ws/validator/", validator, capacity)
        miner.client.connected.set()
        roll = rng.random()
        if roll < 0.1:
            classes = {"gpu.a100": ClassCapacity(total=1, free=1)}
        else:
            free = 0 if roll < 0.3 else rng.randint(1, 8)
            classes = {CLASS: ClassCapacity(total=8, free=free)}
        miner.manifest = dict(Manifest(classes=classes).classes)
        if rng.random() < 0.2:
            for _ in range(rng.randint(1, 5)):
                reputation.note_incident(hotkey, now - rng.uniform(0, 3000))
        if rng.random() < 0.02:
            reputation.note_blacklist(hotkey, now + 3600, "bench")
        miners.append(miner)
    return miners, reputation


def bench_routing(args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(7)
    miners, reputation = make_miners(args.miners, rng)
    limits = ResourceLimits()
    tried: set[str] = set()

    def ours() -> None:
        decision = route(miners, CLASS, exclude=tried, limits=limits, reputation=reputation, rng=rng)
        json.dumps(decision.record())  # what the ledger stores

    def baseline() -> None:
        free = [miner for miner in miners if miner.free(CLASS) > 0]
        rng.choice(free)

    timings: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(50):  # warm-up
        ours()
        baseline()
    for _ in range(args.decisions):  # interleaved, so drift in the machine hits both alike
        for name, work in (("ours", ours), ("baseline", baseline)):
            started = time.perf_counter()
            work()
            timings[name].append((time.perf_counter() - started) * 1000)
    return {
        "routing_p50_ms": round(statistics.median(timings["ours"]), 4),
        "routing_p95_ms": round(percentile(timings["ours"], 0.95), 4),
        "routing_baseline_p50_ms": round(statistics.median(timings["baseline"]), 4),
        "routing_baseline_p95_ms": round(percentile(timings["baseline"], 0.95), 4),
    }


# -- receipts --------------------------------------------------------------------------------------


def make_pages(jobs: int) -> list[str]:
    """A day of one miner's receipts, countersigned, in signed pages, as JSON on the wire."""
    validator, miner = Keypair.generate(), Keypair.generate()
    start = time.time() - 86400
    receipts = []
    for index in range(jobs):
        for kind in ReceiptKind:
            finished = {"status": "completed", "duration_s": 1.0, "outputs_digest": "ab" * 32}
            payload = ReceiptPayload(
                kind=kind,
                job_id=f"job-{index}",
                attempt=1,
                validator_hotkey=validator.hotkey,
                miner_hotkey=miner.hotkey,
                executor_class=CLASS,
                at=start + index * 86400 / jobs,
                **(finished if kind is ReceiptKind.FINISHED else {}),
            )
            receipts.append(countersign(miner, sign_receipt(validator, payload)))
    pages = []
    for cursor in range(0, len(receipts), PAGE):
        chunk = receipts[cursor : cursor + PAGE]
        next_cursor = cursor + PAGE if cursor + PAGE < len(receipts) else None
        page = ReceiptPage(
            miner_hotkey=miner.hotkey, cursor=cursor, next_cursor=next_cursor, receipts=chunk, issued_at=time.time()
        )
        pages.append(sign_page(miner, page).model_dump_json())
    return pages


def bench_receipts(args: argparse.Namespace) -> dict[str, float]:
    log(f"signing a day of receipts: {args.jobs_per_day} jobs × 3 …")
    pages = make_pages(args.jobs_per_day)
    count = args.jobs_per_day * 3
    miner_hotkey = json.loads(pages[0])["miner_hotkey"]

    def verified() -> int:
        total = 0
        for text in pages:
            page = ReceiptPage.model_validate_json(text)
            verify_page(page, miner_hotkey)
            for receipt in page.receipts:
                verify_receipt(receipt, miner_hotkey=miner_hotkey)
                total += 1
        return total

    def parsed() -> int:
        return sum(len(ReceiptPage.model_validate_json(text).receipts) for text in pages)

    results: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(args.repeats):
        for name, work in (("ours", verified), ("baseline", parsed)):
            started = time.perf_counter()
            if work() != count:
                raise SystemExit(f"{name}: not every receipt came through")
            results[name].append(time.perf_counter() - started)
    ours, baseline = statistics.median(results["ours"]), statistics.median(results["baseline"])
    return {
        "receipts_per_day": count,
        "verify_receipts_per_s": round(count / ours),
        "parse_receipts_per_s": round(count / baseline),
        "verify_day_s": round(ours, 3),
        "parse_day_s": round(baseline, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--jobs-per-day", type=int, default=17280, help="one job every 5 s")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    log(f"routing: {args.decisions} decisions among {args.miners} miners …")
    routing = bench_routing(args)
    receipts = bench_receipts(args)
    figures = {
        **routing,
        "routing_ratio_p50": round(routing["routing_p50_ms"] / routing["routing_baseline_p50_ms"], 2),
        **receipts,
        "verify_cost_ratio": round(receipts["verify_day_s"] / receipts["parse_day_s"], 2),
        "miners": args.miners,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(f"routing among {args.miners} miners (p50 / p95):")
    print(f"  weighted by reliability, recorded : {routing['routing_p50_ms']:.3f} / {routing['routing_p95_ms']:.3f} ms")
    print(
        f"  uniform among free (baseline)     : {routing['routing_baseline_p50_ms']:.3f} / "
        f"{routing['routing_baseline_p95_ms']:.3f} ms   → ×{figures['routing_ratio_p50']}"
    )
    print(f"a day of one miner's receipts ({receipts['receipts_per_day']} receipts, pages of {PAGE}):")
    print(f"  parse + verify every signature    : {receipts['verify_receipts_per_s']:,} receipts/s")
    print(f"  parse only (baseline)             : {receipts['parse_receipts_per_s']:,} receipts/s")
    print(f"  a whole day verified in {receipts['verify_day_s']} s (×{figures['verify_cost_ratio']} the parse)")
    print("reproduce: .venv/bin/python bench/integrity.py " + " ".join(sys.argv[1:]))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
