"""Exit plans (docs/contract.md §3b) as values: distances, target legs, break-even and trailing;
the parser whose `ExitPlanError` names the field and the rule; the levels a plan sets from an
average and the allotment of the open quantity to its legs. Pure, and shared: the UI validates and
previews plans with it, the engine runs them (services/position_engine/exit_plan_steps.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_UP,
    Decimal,
    InvalidOperation,
)
from typing import Literal, TypeVar, cast

from libs.common.futures.instruments import ContractSpec

Unit = Literal["ticks", "points", "usd", "percent"]
UNITS: tuple[Unit, ...] = ("ticks", "points", "usd", "percent")
MAX_LEGS = 3
ZERO = Decimal(0)
HUNDRED = Decimal(100)
T = TypeVar("T")


class ExitPlanError(ValueError):
    """A plan that breaks a rule of §3b; `field` is its path, e.g. `exits.targets[1].qty`."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class Distance:
    """A distance from the average entry in one unit; `usd` is per contract."""

    unit: Unit
    value: Decimal

    def points(self, avg: Decimal, spec: ContractSpec) -> Decimal:
        """The distance in price points from an average `avg`."""
        if self.unit == "ticks":
            return self.value * spec.tick_size
        if self.unit == "points":
            return self.value
        if self.unit == "usd":
            return self.value / spec.point_value
        return avg * self.value / HUNDRED

    def to_json(self) -> dict[str, int | float]:
        whole = self.value == self.value.to_integral_value()
        return {self.unit: int(self.value) if whole else float(self.value)}


@dataclass(frozen=True)
class TargetLeg:
    distance: Distance
    qty: int | None = None  # None on the last leg: it takes the rest


@dataclass(frozen=True)
class Breakeven:
    trigger: Distance
    offset: Distance  # the stop moves to avg + offset (long); may be 0


@dataclass(frozen=True)
class Trail:
    trigger: Distance
    distance: Distance  # the stop follows best − distance (long)


@dataclass(frozen=True)
class ExitPlan:
    stop: Distance | None = None
    targets: tuple[TargetLeg, ...] = ()
    breakeven: Breakeven | None = None
    trail: Trail | None = None

    @classmethod
    def from_ticks(cls, tp_ticks: int | None, sl_ticks: int | None) -> ExitPlan:
        """The one-leg plan of a recorder's `tp_ticks`/`sl_ticks` (0 or None: no level, as §3)."""
        stop = Distance("ticks", Decimal(sl_ticks)) if sl_ticks else None
        legs = (TargetLeg(Distance("ticks", Decimal(tp_ticks))),) if tp_ticks else ()
        return cls(stop=stop, targets=legs)

    def to_json(self) -> dict[str, object]:
        """The `exits` object that `parse_exit_plan` reads back to an equal plan."""
        out: dict[str, object] = {}
        if self.stop is not None:
            out["stop"] = self.stop.to_json()
        if self.targets:
            out["targets"] = [_leg_json(leg) for leg in self.targets]
        if self.breakeven is not None:
            b = self.breakeven
            out["breakeven"] = {"trigger": b.trigger.to_json(), "offset": b.offset.to_json()}
        if self.trail is not None:
            t = self.trail
            out["trail"] = {"trigger": t.trigger.to_json(), "distance": t.distance.to_json()}
        return out


def _leg_json(leg: TargetLeg) -> dict[str, int | float]:
    out = leg.distance.to_json()
    if leg.qty is not None:
        out["qty"] = leg.qty
    return out


# --- parsing ----------------------------------------------------------------------------------


def parse_exit_plan(obj: object, spec: ContractSpec | None = None) -> ExitPlan:
    """The plan of an `exits` object; raises ExitPlanError naming the field and the rule.

    With `spec` (the instrument is known) it also refuses distances that round to no tick.
    """
    fields = _object(obj, "exits", ("stop", "targets", "breakeven", "trail"))
    if not any(v is not None for v in fields.values()):
        raise ExitPlanError("exits", "a plan needs a stop, targets, break-even or a trailing stop")
    plan = ExitPlan(
        stop=_optional(fields.get("stop"), "exits.stop", _distance),
        targets=_targets(fields.get("targets")),
        breakeven=_optional(fields.get("breakeven"), "exits.breakeven", _breakeven),
        trail=_optional(fields.get("trail"), "exits.trail", _trail),
    )
    check_plan(plan, spec)
    return plan


def _object(obj: object, where: str, allowed: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise ExitPlanError(where, "must be an object")
    for key in obj:
        if key not in allowed:
            raise ExitPlanError(f"{where}.{key}", f"unknown field; expected {', '.join(allowed)}")
    return cast(dict[str, object], obj)


def _optional(value: object, where: str, parse: Callable[[object, str], T]) -> T | None:
    return None if value is None else parse(value, where)


def _number(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ExitPlanError(where, "must be a number")
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ExitPlanError(where, "must be a number") from None
    if not number.is_finite():
        raise ExitPlanError(where, "must be a finite number")
    return number


def _distance(value: object, where: str, *, zero_ok: bool = False) -> Distance:
    units = _object(value, where, UNITS)
    if len(units) != 1:
        raise ExitPlanError(where, "needs exactly one unit of ticks, points, usd, percent")
    ((unit, raw),) = units.items()
    number = _number(raw, f"{where}.{unit}")
    if number < 0 or (number == 0 and not zero_ok):
        rule = "must be 0 or more" if zero_ok else "must be greater than 0"
        raise ExitPlanError(f"{where}.{unit}", rule)
    if unit == "ticks" and number != number.to_integral_value():
        raise ExitPlanError(f"{where}.{unit}", "must be a whole number of ticks")
    return Distance(cast(Unit, unit), number)


def _targets(value: object) -> tuple[TargetLeg, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ExitPlanError("exits.targets", f"must be a list of 1 to {MAX_LEGS} legs")
    if len(value) > MAX_LEGS:
        raise ExitPlanError("exits.targets", f"at most {MAX_LEGS} legs, got {len(value)}")
    legs = tuple(_leg(raw, i, i == len(value) - 1) for i, raw in enumerate(value))
    for i in range(1, len(legs)):
        if not _below(legs[i - 1].distance, legs[i].distance, None):
            where = f"exits.targets[{i}]"
            raise ExitPlanError(where, "legs must be in increasing distance")
    return legs


def _leg(raw: object, i: int, last: bool) -> TargetLeg:
    where = f"exits.targets[{i}]"
    fields = dict(_object(raw, where, (*UNITS, "qty")))
    qty_raw = fields.pop("qty", None)
    distance = _distance(fields, where)
    if last:
        if qty_raw is not None:
            raise ExitPlanError(f"{where}.qty", "the last leg takes the rest and has no qty")
        return TargetLeg(distance)
    if qty_raw is None:
        raise ExitPlanError(f"{where}.qty", "every leg but the last needs a qty")
    qty = _number(qty_raw, f"{where}.qty")
    if qty <= 0 or qty != qty.to_integral_value():
        raise ExitPlanError(f"{where}.qty", "must be a whole number of contracts, at least 1")
    return TargetLeg(distance, int(qty))


def _breakeven(value: object, where: str) -> Breakeven:
    fields = _object(value, where, ("trigger", "offset"))
    trigger = _distance(_required(fields, "trigger", where), f"{where}.trigger")
    offset = _distance(_required(fields, "offset", where), f"{where}.offset", zero_ok=True)
    if not _below(offset, trigger, None):
        raise ExitPlanError(f"{where}.offset", "must be below its trigger")
    return Breakeven(trigger, offset)


def _trail(value: object, where: str) -> Trail:
    fields = _object(value, where, ("trigger", "distance"))
    trigger = _distance(_required(fields, "trigger", where), f"{where}.trigger")
    return Trail(trigger, _distance(_required(fields, "distance", where), f"{where}.distance"))


def _required(fields: dict[str, object], key: str, where: str) -> object:
    if fields.get(key) is None:
        raise ExitPlanError(f"{where}.{key}", "is required")
    return fields[key]


# --- checks that need the instrument (and, for percent, the average) --------------------------


def check_plan(plan: ExitPlan, spec: ContractSpec | None, avg: Decimal | None = None) -> None:
    """Raise ExitPlanError when a distance rounds to no tick, legs are not increasing or the
    break-even offset is not below its trigger. Pairs that need what is not given (the instrument
    for ticks against points, the average for percent against another unit) are skipped."""
    for where, distance in _distances(plan):
        if spec is None or (distance.unit == "percent" and avg is None):
            continue
        ticks = distance.points(avg or ZERO, spec) / spec.tick_size
        if ticks.quantize(Decimal(1), rounding=ROUND_HALF_UP) < 1:
            raise ExitPlanError(where, f"rounds to no tick of {spec.root} ({spec.tick_size})")
    for i in range(1, len(plan.targets)):
        prior, leg = plan.targets[i - 1].distance, plan.targets[i].distance
        if not _below(prior, leg, spec, avg):
            raise ExitPlanError(f"exits.targets[{i}]", "legs must be in increasing distance")
    b = plan.breakeven
    if b is not None and not _below(b.offset, b.trigger, spec, avg):
        raise ExitPlanError("exits.breakeven.offset", "must be below its trigger")


def _distances(plan: ExitPlan) -> list[tuple[str, Distance]]:
    """Every distance that must reach at least one tick (a break-even offset may be 0)."""
    out = [(f"exits.targets[{i}]", leg.distance) for i, leg in enumerate(plan.targets)]
    if plan.stop is not None:
        out.append(("exits.stop", plan.stop))
    if plan.breakeven is not None:
        out.append(("exits.breakeven.trigger", plan.breakeven.trigger))
    if plan.trail is not None:
        out += [("exits.trail.trigger", plan.trail.trigger)]
        out += [("exits.trail.distance", plan.trail.distance)]
    return out


def _below(a: Distance, b: Distance, spec: ContractSpec | None, avg: Decimal | None = None) -> bool:
    """a < b, or True when they cannot be compared without the instrument or the average."""
    if a.unit == b.unit:
        return a.value < b.value
    if spec is None or (avg is None and "percent" in (a.unit, b.unit)):
        return True
    base = avg or ZERO
    return a.points(base, spec) < b.points(base, spec)


# --- levels ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanLevels:
    """A plan's prices for one average; `trail_points` is the trailing distance in points."""

    stop: Decimal | None
    legs: tuple[Decimal, ...]
    breakeven_trigger: Decimal | None = None
    breakeven_stop: Decimal | None = None
    trail_trigger: Decimal | None = None
    trail_points: Decimal | None = None


def grid_level(avg: Decimal, points: Decimal, above: bool, tick: Decimal) -> Decimal:
    """avg ± points on the tick grid, exact halves away from the average (§3). A zero distance
    rounds towards the profit side, so that a break-even stop never locks in a loss."""
    raw = avg + points if above else avg - points
    if points == 0:
        mode = ROUND_CEILING if above else ROUND_FLOOR
    else:
        mode = ROUND_HALF_UP if above else ROUND_HALF_DOWN  # prices are positive
    return (raw / tick).quantize(Decimal(1), rounding=mode) * tick


def trail_level(best: Decimal, points: Decimal, side: str, tick: Decimal) -> Decimal:
    """best − points for a long (+ for a short) on the nearest tick, exact halves away from best."""
    long = side == "long"
    raw = best - points if long else best + points
    mode = ROUND_HALF_DOWN if long else ROUND_HALF_UP
    return (raw / tick).quantize(Decimal(1), rounding=mode) * tick


def plan_levels(plan: ExitPlan, avg: Decimal, side: str, spec: ContractSpec) -> PlanLevels:
    """Stop, leg and trigger levels of `plan` for a position of `side` at average `avg`."""
    up = side == "long"  # targets and triggers of a long are above its average

    def level(distance: Distance | None, above: bool) -> Decimal | None:
        if distance is None:
            return None
        return grid_level(avg, distance.points(avg, spec), above, spec.tick_size)

    legs = tuple(
        grid_level(avg, leg.distance.points(avg, spec), up, spec.tick_size) for leg in plan.targets
    )
    b, t = plan.breakeven, plan.trail
    return PlanLevels(
        stop=level(plan.stop, not up),
        legs=legs,
        breakeven_trigger=level(b.trigger, up) if b else None,
        breakeven_stop=level(b.offset, up) if b else None,
        trail_trigger=level(t.trigger, up) if t else None,
        trail_points=t.distance.points(avg, spec) if t else None,
    )


def allot(plan: ExitPlan, open_qty: Decimal, filled_legs: Sequence[bool]) -> tuple[Decimal, ...]:
    """The open quantity per leg: each unfilled leg its qty or what is left, the last the rest;
    a filled leg holds none (it stays filled, so contracts added later go to the legs after it)."""
    left = open_qty
    out: list[Decimal] = []
    last = len(plan.targets) - 1
    for i, leg in enumerate(plan.targets):
        if filled_legs[i]:
            out.append(ZERO)
            continue
        share = left if i == last or leg.qty is None else min(Decimal(leg.qty), left)
        out.append(share)
        left -= share
    return tuple(out)
