"""A hypothesis strategy for exit plans (docs/contract.md §3b) in ticks: 1-3 legs, and maybe a
stop, a break-even and a trailing stop; shared by the property tests."""

from hypothesis import strategies as st

from libs.common.exit_plans import ExitPlan, parse_exit_plan


@st.composite
def plans(draw) -> ExitPlan:
    n = draw(st.integers(1, 3))
    dists = sorted(draw(st.sets(st.integers(1, 40), min_size=n, max_size=n)))
    qtys = [draw(st.integers(1, 2)) for _ in dists[:-1]]
    obj: dict = {"targets": [{"ticks": d, "qty": q} for d, q in zip(dists, qtys, strict=False)]}
    obj["targets"].append({"ticks": dists[-1]})
    if draw(st.booleans()):
        obj["stop"] = {"ticks": draw(st.integers(1, 20))}
    if draw(st.booleans()):
        trigger = draw(st.integers(1, 20))
        offset = {"ticks": draw(st.integers(0, trigger - 1))}
        obj["breakeven"] = {"trigger": {"ticks": trigger}, "offset": offset}
    if draw(st.booleans()):
        trail = {"trigger": {"ticks": draw(st.integers(1, 20))}}
        obj["trail"] = {**trail, "distance": {"ticks": draw(st.integers(1, 40))}}
    return parse_exit_plan(obj)
