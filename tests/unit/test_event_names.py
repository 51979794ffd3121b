"""Event names on `jt:events`: what the pages listen for and what producers can build are all
defined in libs.common.events, so a renamed or misspelt event fails here, not silently in a page.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_type_hints

import pytest

from libs.common import events
from services.ui.live import BROADCAST_TYPES

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "services" / "ui"
PRODUCER_DIRS = ("services", "libs", "tools")
DOMAINS = "signal|position|order|account|recorder|price|bench|intent"
# Any quoted string shaped like an event name: a listener's argument, an array or object key
# that a loop subscribes with, a `type === "..."` comparison.
EVENT_LIKE = re.compile(rf"""["'`]((?:{DOMAINS})\.[A-Za-z_]*\*?)["'`]""")
ON_EVENT_ARG = re.compile(r"""\bonEvent\(\s*["'`]([^"'`]*)["'`]""")
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
NAME_START = re.compile(rf"^(?:{DOMAINS})\.")


def page_scripts() -> dict[str, str]:
    """The JavaScript the pages run: the modules and any inline script in a template."""
    scripts = {
        str(p.relative_to(ROOT)): p.read_text() for p in sorted((UI / "static/js").glob("*.js"))
    }
    for template in sorted((UI / "templates").glob("*.html")):
        inline = INLINE_SCRIPT.findall(template.read_text())
        if inline:
            scripts[str(template.relative_to(ROOT))] = "\n".join(inline)
    return scripts


def names_in_script(text: str) -> set[str]:
    return set(EVENT_LIKE.findall(text)) | set(ON_EVENT_ARG.findall(text))


def is_defined(name: str) -> bool:
    """In events.ALL, or "*" (every event), or a pattern "<domain>.*" that matches a name."""
    if name == "*":
        return True
    if name.endswith(".*"):
        return any(defined.startswith(name[:-1]) for defined in events.ALL)
    return name in events.ALL


def test_the_scan_sees_listeners_in_modules_and_inline_scripts() -> None:
    assert names_in_script('onEvent("position.closed", f)') == {"position.closed"}
    assert names_in_script('for (const k of ["account.flattened"]) onEvent(k, f);') == {
        "account.flattened"
    }
    assert names_in_script('onEvent("flatened", f)') == {"flatened"}
    page = '<script type="module">onEvent("order.*", f)</script><script src="x.js"></script>'
    assert INLINE_SCRIPT.findall(page) == ['onEvent("order.*", f)']


def test_undefined_names_are_told_apart() -> None:
    assert not is_defined("account.flattened")  # the old Traders-page name nobody emits
    assert not is_defined("flatened")
    assert not is_defined("intent.*")
    assert is_defined("account.trader_flattened") and is_defined("signal.*")


def test_every_event_a_page_listens_for_is_defined() -> None:
    found = {
        (path, name) for path, text in page_scripts().items() for name in names_in_script(text)
    }
    names = {name for _, name in found}
    # The scan must see the pages' listeners, or this test would pass on nothing.
    assert {"position.opened", "position.marked", "signal.*", "order.*", "price.status"} <= names
    assert [f"{path}: {name}" for path, name in sorted(found) if not is_defined(name)] == []


def listened_types() -> set[str]:
    """Every defined event some page listens for, patterns ("order.*", "*") expanded."""
    names = {name for text in page_scripts().values() for name in names_in_script(text)}
    return {
        defined
        for name in names
        for defined in events.ALL
        if name in ("*", defined) or (name.endswith(".*") and defined.startswith(name[:-1]))
    }


def owner_type(event_type: str) -> object:
    """The declared type of the payload's `user_id`, None when the payload has none."""
    return get_type_hints(events.PAYLOADS[event_type]).get("user_id")


def test_every_event_a_page_listens_for_reaches_a_page() -> None:
    """The relay sends an event to the room of its int `user_id`, or to everyone when it is a
    broadcast type, and drops the rest: a listener for any other event would never fire."""
    listened = listened_types()
    assert {events.ACCOUNT_ALERT, events.ACCOUNT_MISMATCH, events.ORDER_BRACKET_FILLED} <= listened
    unreachable = sorted(
        name for name in listened if name not in BROADCAST_TYPES and owner_type(name) is not int
    )
    assert unreachable == []


def test_the_traders_page_hears_every_trader_note() -> None:
    text = (UI / "static/js/traders.js").read_text()
    assert {
        events.ACCOUNT_TRADER_PAUSED,
        events.ACCOUNT_TRADER_SKIPPED,
        events.ACCOUNT_TRADER_FLATTENED,
    } <= names_in_script(text)


def test_built_names_are_defined_and_unknown_parts_refused() -> None:
    for build, table in (
        (events.signal_event, events.BY_SIGNAL_STATUS),
        (events.position_event, events.BY_POSITION_CHANGE),
        (events.order_event, events.BY_ORDER_STATUS),
        (events.trader_event, events.BY_TRADER_NOTE),
    ):
        for part, name in table.items():
            assert build(part) == name and name in events.ALL
        with pytest.raises(ValueError, match="no event for"):
            build("flatened")
    assert events.signal_event("applied") == "signal.applied"
    assert events.position_event("opened") == "position.opened"
    assert events.order_event("filled") == "order.filled"
    assert events.trader_event("flattened") == "account.trader_flattened"


def test_every_event_has_a_documented_payload() -> None:
    assert set(events.PAYLOADS) == events.ALL
    assert all(name.split(".")[0] in DOMAINS.split("|") for name in events.ALL)


def _producer_sources() -> list[Path]:
    return [
        p
        for d in PRODUCER_DIRS
        for p in sorted((ROOT / d).rglob("*.py"))
        if "node_modules" not in p.parts
    ]


def _event_strings(tree: ast.AST) -> tuple[set[str], list[int]]:
    """Literal event names, and the lines of f-strings that start like one."""
    literals: set[str] = set()
    built: list[int] = []
    parts_of_fstrings: set[int] = set()
    for node in ast.walk(tree):  # breadth first: an f-string comes before its parts
        if isinstance(node, ast.JoinedStr) and node.values:
            parts_of_fstrings.update(id(part) for part in node.values)
            head = node.values[0]
            if isinstance(head, ast.Constant) and NAME_START.match(str(head.value)):
                built.append(node.lineno)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in parts_of_fstrings
            and re.fullmatch(rf"(?:{DOMAINS})\.[a-z_]+", node.value)
        ):
            literals.add(node.value)
    return literals, built


def test_producers_use_only_defined_names_and_build_none_by_hand() -> None:
    """A literal name must be defined; a name built from a status goes through events.*_event,
    which can only return defined names (an f-string could produce anything)."""
    unknown, hand_built = [], []
    for path in _producer_sources():
        literals, built = _event_strings(ast.parse(path.read_text(), str(path)))
        rel = path.relative_to(ROOT)
        unknown += [f"{rel}: {name}" for name in sorted(literals - events.ALL)]
        hand_built += [f"{rel}:{line}" for line in built]
    assert unknown == []
    assert hand_built == []
