"""The README's shell examples, run as written against the running services.

Each ```sh block of "From zero to a tracked position" runs in bash, in order, the way a new user
pastes it: the same commands, with only the values a user would paste in by hand filled in
(`<token from webhook_url>`, `<signal_id>`, `<id>`) and `localhost:8082`/`8083` pointed at this
test's ports. Every curl must answer 2xx with `"ok": true`, and the worked example must end the
way the README says.
"""

from __future__ import annotations

import json
import re
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from simulators.tradovate import __main__ as local_tradovate
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.contracts import ContractCatalogue
from tests.e2e.conftest import PROJECT_ROOT, Api, eventually

README = PROJECT_ROOT / "README.md"
SECTION = "## From zero to a tracked position"
STATUS_MARK = "@@status "
# What a user pastes by hand, from an earlier answer.
PLACEHOLDER = re.compile(r"<(token from webhook_url|signal_id|id)>")
SHELL_VARIABLES = ("KEY", "J", "HOOK", "NOW")


def readme_blocks() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.S)


def readme_setting_for_hand_written_ticks() -> str:
    """The command the README gives for trading on paper with PRICE_SOURCE=off."""
    found = re.search(
        r"`(\.venv/bin/justtrades redis-cli HSET jt:last_price [^`]+)`", README.read_text()
    )
    assert found, "the README no longer says how to set the last price by hand"
    return found.group(1)


def commands(block: str) -> list[str]:
    """The block's commands one by one: a line ending in a backslash, or inside a quote left
    open, goes on with the next."""
    found, current = [], ""
    for line in block.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue  # a comment between commands (its quotes are prose)
        current = f"{current}\n{line}" if current else line
        if line.endswith("\\") or current.count("'") % 2:
            continue
        found.append(current)
        current = ""
    return found


@dataclass
class Answer:
    status: int
    body: dict


@dataclass
class Shell:
    """Runs pieces of README blocks in bash, keeping the variables they set between pieces."""

    env: dict[str, str]
    ports: dict[str, int]
    state: Path
    answers: list[Answer] = field(default_factory=list)

    def run(self, script: str) -> list[Answer]:
        script = script.replace("localhost:8082", f"127.0.0.1:{self.ports['ui']}")
        script = script.replace("localhost:8083", f"127.0.0.1:{self.ports['gateway']}")
        wrapped = "\n".join(
            [
                "set -euo pipefail",
                f"[ -f {self.state} ] && source {self.state}",
                # Each answer's status on a line of its own, after the body the README shows.
                f"curl() {{ command curl -w '\\n{STATUS_MARK}%{{http_code}}\\n' \"$@\"; }}",
                script,
                f"declare -p {' '.join(SHELL_VARIABLES)} > {self.state} 2>/dev/null || true",
            ]
        )
        done = subprocess.run(
            ["bash", "-c", wrapped],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        answers = _answers(done.stdout)
        self.answers.extend(answers)
        return answers

    def variable(self, name: str) -> str:
        """A shell variable an earlier piece set (the README's KEY, say)."""
        script = f'source {self.state}; printf %s "${name}"'
        return subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, check=True
        ).stdout


def _answers(output: str) -> list[Answer]:
    answers, body = [], []
    for line in output.splitlines():
        if line.startswith(STATUS_MARK):
            # The answer is the line curl printed last; other commands' output comes before.
            text = next((b for b in reversed(body) if b.strip()), "")
            answers.append(Answer(int(line[len(STATUS_MARK) :]), json.loads(text) if text else {}))
            body = []
        else:
            body.append(line)
    return answers


def point_the_ui_at_a_local_tradovate(stack, servers: ExitStack) -> None:
    """What the README says to do first: `python -m simulators.tradovate` (its demo user and API
    key), and Just Trades started against it."""
    demo = servers.enter_context(
        BrokerSimulator(
            ContractCatalogue.standard(datetime.now(UTC).date()),
            environment="demo",
            users={local_tradovate.DEMO_USER: local_tradovate.DEMO_PASSWORD},
            app_id=local_tradovate.APP_ID,
            cid=local_tradovate.CID,
            sec=local_tradovate.SEC,
        )
    )
    stack.stop("ui")
    stack.env["TRADOVATE_DEMO_URL"] = demo.url
    stack.start("ui")
    stack.wait_healthy("ui")


def test_the_readme_examples_work_as_written(stack, api, tmp_path):
    shell = Shell(stack.env, stack.ports, tmp_path / "shell-state.sh")
    filled: dict[str, str] = {}

    def fill(match: re.Match[str]) -> str:
        return filled[match.group(1)]

    def remember(answers: list[Answer]) -> None:
        for answer in answers:
            body = answer.body
            if "webhook_url" in body:
                filled["token from webhook_url"] = body["webhook_url"].rsplit("/", 1)[1]
            if "signal_id" in body:
                filled["signal_id"] = body["signal_id"]
                # The README's own user, whose key it made; it says: pending for a few ms
                Api(api.base_url, shell.variable("KEY")).settled_signal(body["signal_id"])
            if body.get("subaccounts"):
                filled["id"] = str(body["subaccounts"][0]["id"])

    blocks = readme_blocks()
    assert len(blocks) >= 6, "the README's walk-through lost its examples"
    with ExitStack() as servers:
        for index, block in enumerate(blocks):
            if index == 1:
                # Before the paper trades, the price the README says to set with PRICE_SOURCE=off.
                shell.run(readme_setting_for_hand_written_ticks())
            if '"broker": "tradovate"' in block:
                point_the_ui_at_a_local_tradovate(stack, servers)
            for command in commands(block):
                if PLACEHOLDER.search(command):
                    command = PLACEHOLDER.sub(fill, command)
                remember(shell.run(command))

    failed = [a for a in shell.answers if not (200 <= a.status < 300 and a.body.get("ok"))]
    assert failed == [], failed
    assert len(shell.answers) >= 12

    # The worked example by hand: bought at 25640 and 25630, out at the take-profit, +20.00.
    readme_user = Api(api.base_url, shell.variable("KEY"))

    def worked_example_closed() -> dict | None:
        closed = readme_user.positions(1, status="closed")
        return next((p for p in closed if p["avg_entry_price"] == 25635), None)

    done = eventually(worked_example_closed, "the worked example's position to close")
    assert (done["exit_price"], done["exit_reason"], done["realized_pnl"]) == (25640, "tp", 20.0)
    # And the Tradovate account was connected with the simulator's demo login
    accounts = readme_user.ok("/api/accounts")["accounts"]
    assert sorted(a["broker"] for a in accounts) == ["paper", "tradovate"]
