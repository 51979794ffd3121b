"""The exit plan of docs/contract.md §3b's worked example, for the tests that run it end to end."""

WORKED_PLAN = {
    "stop": {"ticks": 40},
    "targets": [{"ticks": 20, "qty": 1}, {"ticks": 40, "qty": 1}, {"ticks": 80}],
    "breakeven": {"trigger": {"ticks": 16}, "offset": {"ticks": 2}},
    "trail": {"trigger": {"ticks": 24}, "distance": {"ticks": 12}},
}
