"""`justtrades chaos`: a steady flow of webhooks and ticks, faults at random moments, then the
checks. Prints one table and exits non-zero when a promise was broken."""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from libs.common import streams
from libs.common.config import load_settings
from tools.chaos import faults
from tools.chaos.cluster import Cluster
from tools.chaos.flow import Prices, SignalFlow, TickFlow
from tools.chaos.scenario import lock_by_risk, set_up
from tools.chaos.verify import Checker, Verdict

log = logging.getLogger("chaos")
RISK_LOCK = "risk lock"


@dataclass(frozen=True)
class ChaosConfig:
    duration_s: float = 120.0
    faults: int = 14  # two rounds of every kind
    signal_rate: float = 20.0  # webhooks a second, in all
    seed: int | None = None
    keep: bool = False  # keep the run's folder (logs, databases) afterwards
    root: Path | None = None
    # Called with the checker after the verdict, while everything still runs (the tests use it
    # to show the checks catch a broken promise).
    inspect: Callable[[Checker], None] | None = None
    partitions: int = 1  # engine partitions (ENGINE_PARTITIONS), one engine process each


@dataclass
class ChaosRun:
    config: ChaosConfig
    seed: int
    root: Path
    injected: list[tuple[float, str]] = field(default_factory=list)
    ticks_written: int = 0
    ticks_dropped: int = 0
    verdict: Verdict | None = None
    answers_refused: dict[int, int] = field(default_factory=dict)
    answers_unanswered: int = 0
    restarts: dict[str, int] = field(default_factory=dict)


def run_chaos(config: ChaosConfig) -> ChaosRun:
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(1 << 31)
    root = config.root or Path(tempfile.mkdtemp(prefix="justtrades-chaos-"))
    run = ChaosRun(config, seed, root)
    rng = random.Random(seed)
    _say(f"chaos run, seed {seed}, folder {root}")
    cluster = Cluster.start(root, config.partitions)
    try:
        scenario = set_up(cluster)
        settings = load_settings(cluster.env)
        prices = Prices(random.Random(seed + 1))
        client = redis.Redis.from_url(cluster.redis.url, socket_timeout=5)
        contracts = {root_: cluster.front_contract(root_) for root_ in ("MNQ", "MES", "NQ", "ES")}
        ticks = TickFlow(
            client, settings.all_partition_keys(streams.TICKS), prices, cluster.broker, contracts
        )
        signals = SignalFlow(scenario.targets, prices, config.signal_rate, seed + 2)
        ticks.start()
        signals.start()
        started = time.monotonic()
        plan = faults.schedule(config.faults, rng)
        # Random moments in the first 85 % of the load, so the last fault still meets traffic;
        # the risk desk's lock (not a fault, but a flatten under fire) at 60 %.
        moments = sorted(rng.uniform(0.05, 0.85) * config.duration_s for _ in plan)
        events = sorted([*zip(moments, plan, strict=True), (0.6 * config.duration_s, RISK_LOCK)])
        for moment, kind in events:
            time.sleep(max(0.0, moment - (time.monotonic() - started)))
            at = time.monotonic() - started
            if kind == RISK_LOCK:
                what = lock_by_risk(cluster, scenario)
            else:
                what = faults.FAULTS[kind](cluster, rng)
            run.injected.append((at, what))
            _say(f"  {at:6.1f}s  {what}")
        time.sleep(max(0.0, config.duration_s - (time.monotonic() - started)))
        signals.stop()
        ticks.stop()
        cluster.stop_service("price-feed")  # its ticks would move positions while they are checked
        _say("load stopped; waiting for the system to catch up")
        checker = Checker(cluster, scenario, signals.answers)
        run.verdict = checker.verdict(checker.wait_until_settled())
        if config.inspect is not None:
            config.inspect(checker)
        run.ticks_written, run.ticks_dropped = ticks.written, ticks.dropped
        run.answers_refused = dict(signals.answers.refused)
        run.answers_unanswered = signals.answers.unanswered
        run.restarts = dict(cluster.restarts)
    finally:
        cluster.stop()
        if not config.keep and run.verdict is not None and run.verdict.ok:
            shutil.rmtree(root, ignore_errors=True)
    return run


def table(run: ChaosRun) -> str:
    v = run.verdict
    assert v is not None
    refused = ", ".join(f"{n}×{code}" for code, n in sorted(run.answers_refused.items())) or "none"
    pending = sum(v.pending.values())
    rows = [
        ("engine partitions", str(run.config.partitions)),
        ("faults injected", str(len(run.injected))),
        ("signals accepted (202)", str(v.accepted)),
        ("signals applied", str(v.applied)),
        ("signals duplicated", str(v.duplicated)),
        ("signals lost", str(v.lost)),
        (
            "webhooks unanswered (gateway down or killed)",
            f"{run.answers_unanswered} ({v.applied_unanswered} of them applied anyway)",
        ),
        ("webhooks refused", refused),
        (
            "ticks written / dropped while Redis was down",
            f"{run.ticks_written} / {run.ticks_dropped}",
        ),
        ("stream entries left pending", str(pending)),
        ("orders sent", str(v.orders_sent)),
        ("orders duplicated", str(v.orders_duplicated)),
        (
            "order intents by status",
            ", ".join(f"{k} {n}" for k, n in sorted(v.intents.items())) or "none",
        ),
        (
            "services restarted",
            ", ".join(f"{k} {n}" for k, n in sorted(run.restarts.items())) or "none",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'measure':<{width}} | result |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    lines.append("")
    lines.append("Faults, in order:")
    lines += [f"  {at:6.1f}s  {what}" for at, what in run.injected]
    lines.append("")
    if v.ok:
        lines.append(
            "Every promise held: each accepted signal applied exactly once, positions equal to the "
            "replay of the signal log, nothing pending, no order sent twice, broker positions "
            "equal to the traders'."
        )
    else:
        lines.append(f"BROKEN PROMISES (seed {run.seed}; logs and databases kept in {run.root}):")
        lines += [f"  - {p}" for p in v.problems]
    return "\n".join(lines)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="justtrades chaos", description=__doc__)
    parser.add_argument(
        "--duration", type=float, default=ChaosConfig.duration_s, help="seconds of load"
    )
    parser.add_argument(
        "--faults", type=int, default=ChaosConfig.faults, help="how many faults to inject"
    )
    parser.add_argument(
        "--rate", type=float, default=ChaosConfig.signal_rate, help="webhooks a second"
    )
    parser.add_argument("--seed", type=int, help="repeat a run's choice of faults and moments")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, data)")
    parser.add_argument(
        "--partitions",
        type=int,
        default=ChaosConfig.partitions,
        help="engine partitions, one engine process each; a kill takes one of them",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run = run_chaos(
        ChaosConfig(
            args.duration,
            args.faults,
            args.rate,
            args.seed,
            args.keep,
            partitions=args.partitions,
        )
    )
    print(table(run))
    return 0 if run.verdict is not None and run.verdict.ok else 1
