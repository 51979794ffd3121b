"""Settings: read once from the environment (or a `.env` file) at start-up and passed down.

Every outside URL is configurable so tests can point the real clients at local simulators.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The URL schemes that name a Redis Cluster, each with the scheme of its nodes (redis_conn).
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_CLUSTER_PREFIXES = tuple(f"{scheme}://" for scheme in CLUSTER_SCHEMES)


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def normalize_database_url(url: str) -> str:
    """Accept `postgres://` and `postgresql://` as docker and hosting providers write them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class Settings:
    # Empty until resolved: the supervisor starts embedded servers and fills them in (with_urls).
    database_url: str = ""
    redis_url: str = ""
    # RQ's Redis (order and notification queues, the broker rate limiter): REDIS_URL unless this
    # names another plain Redis; required when REDIS_URL is a Redis Cluster, which RQ cannot use.
    queue_redis_url: str = ""
    secret_key: str = ""
    encryption_key: str = ""
    public_url: str = "http://localhost:8083"
    stream_prefix: str = "jt:"
    # The engine in partitions (docs/operations.md "Partitions"): a recorder belongs to partition
    # `recorder_id mod engine_partitions`; an engine process runs the one `engine_partition` names.
    engine_partitions: int = 1
    engine_partition: int = 0
    gateway_port: int = 8083
    ui_port: int = 8082
    price_feed_port: int = 8084
    engine_port: int = 8085
    # Where the internal ports (engine, price feed, executor metrics) listen: loopback by default.
    internal_host: str = "127.0.0.1"
    executor_metrics_port: int = 8086  # a second executor on the host needs its own (0: none)
    # The gateway's /metrics, on INTERNAL_HOST, away from the public webhook port (0: none).
    gateway_metrics_port: int = 8081
    price_source: str = "tradingview"
    price_watchlist: tuple[str, ...] = ("MNQ", "ES")
    replay_file: str | None = None
    replay_speed: float = 1.0
    sim_interval_s: float = 0.25
    tradingview_url: str = "https://www.tradingview.com"
    tradingview_ws_url: str = "wss://data.tradingview.com/socket.io/websocket"
    tradingview_scanner_url: str = "https://scanner.tradingview.com"
    # Base of the two-step sign-in (`/accounts/signin/`, `/accounts/two-factor/signin/totp/`);
    # empty: the same site as tradingview_url.
    tradingview_signin_url: str = ""
    tradovate_live_url: str = "https://live.tradovateapi.com/v1"
    tradovate_demo_url: str = "https://demo.tradovateapi.com/v1"
    tradovate_md_url: str = "wss://md.tradovateapi.com/v1/websocket"
    # The account sockets; empty means derived from the REST URLs (…/v1 → wss://…/v1/websocket).
    tradovate_live_ws_url: str = ""
    tradovate_demo_ws_url: str = ""
    tradovate_oauth_url: str = "https://trader.tradovate.com/oauth"
    tradovate_oauth_client_id: str = ""  # empty: OAuth connect is off, credentials still work
    tradovate_oauth_client_secret: str = field(default="", repr=False)
    ui_public_url: str = "http://localhost:8082"  # where Tradovate sends a browser back to
    tradovate_rate_limit_per_min: int = 60
    executor_workers: int = 2
    webhook_ip_allowlist: tuple[str, ...] = ()
    webhook_rate_limit: int = 30
    webhook_rate_window_s: int = 10
    max_signal_qty: int = 1000  # contracts one webhook may carry, whatever the recorder allows
    webhook_dedupe_window_s: int = 600  # how long a webhook's `id` marks a repeat
    trust_proxy: bool = False
    metrics_host: str = (
        "127.0.0.1"  # where the UI reads the services' /metrics for the Control Center
    )
    # Instead, each service's host and port by name (METRICS_TARGETS), as under Docker.
    metrics_targets: tuple[tuple[str, tuple[str, int]], ...] = ()
    login_max_failures: int = 5  # per email and address, in login_window_s
    login_max_failures_per_address: int = 50
    login_max_failures_per_email: int = 20  # whatever the address
    login_window_s: int = 900
    var_dir: Path = field(default=PROJECT_ROOT / "var")
    # Where the gateway keeps signals while Redis is unreachable, and how many it may hold.
    gateway_spool_dir: Path = field(default=PROJECT_ROOT / "var" / "spool")
    gateway_spool_max: int = 10_000
    log_level: str = "INFO"
    # Notifications (§4e): hosts a destination may name although they resolve to a private or
    # loopback address; the outside APIs (configurable for tests); the operator's SMTP server.
    notify_allowed_hosts: tuple[str, ...] = ()
    notify_retry_intervals: tuple[int, ...] = (10, 60, 300)  # seconds before each retry
    notify_timeout_s: float = 10.0
    discord_api_url: str = "https://discord.com/api"
    telegram_api_url: str = "https://api.telegram.org"
    smtp_host: str = ""  # empty: e-mail destinations cannot be delivered
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = ""
    smtp_starttls: bool = True

    def with_urls(self, database_url: str, redis_url: str) -> Settings:
        return replace(self, database_url=normalize_database_url(database_url), redis_url=redis_url)

    def stream(self, name: str) -> str:
        """Full Redis key of a stream or hash, e.g. `signals` → `jt:signals`."""
        return f"{self.stream_prefix}{name}"

    @property
    def redis_cluster(self) -> bool:
        """REDIS_URL names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`)."""
        return self.redis_url.startswith(_CLUSTER_PREFIXES)

    @property
    def queue_url(self) -> str:
        """Where RQ's queues and the broker rate limiter live (QUEUE_REDIS_URL or REDIS_URL)."""
        return self.queue_redis_url or self.redis_url

    @property
    def partitioned_keys(self) -> bool:
        """Whether the engine's keys carry their partition's hash tag: with more than one
        partition, or on a Redis Cluster (where the two streams the engine reads in one command
        must live on one node). One partition on a plain Redis keeps the contract's names."""
        return self.engine_partitions > 1 or self.redis_cluster

    def partition_key(self, name: str, partition: int) -> str:
        """The key of `name` (signals, ticks, engine_commands …) in one engine partition:
        `jt:signals` with one partition on a plain Redis, else `jt:{p1}:signals`, whose hash tag
        `{p1}` puts every key of partition 1 in one Redis Cluster slot."""
        if not self.partitioned_keys:
            return self.stream(name)
        return f"{self.stream_prefix}{{p{partition}}}:{name}"

    @property
    def executor_metrics_first(self) -> int:
        """The first executor's metrics port: EXECUTOR_METRICS_PORT, moved past the engines'
        ports when partitions would take it (partition K's engine listens on ENGINE_PORT + K,
        and 8085 + 1 is the executors' default 8086). 0: none."""
        first, n = self.executor_metrics_port, self.engine_partitions
        engines = range(self.engine_port, self.engine_port + n)
        if (
            first
            and n > 1
            and first < engines.stop
            and first + self.executor_workers > engines.start
        ):
            return engines.stop
        return first

    def partition_of(self, recorder_id: int) -> int:
        """The partition a recorder's signals, position and commands belong to."""
        return recorder_id % self.engine_partitions

    def own_key(self, name: str) -> str:
        """`partition_key` of this process's own partition (`engine_partition`)."""
        return self.partition_key(name, self.engine_partition)

    def all_partition_keys(self, name: str) -> list[str]:
        return [self.partition_key(name, k) for k in range(self.engine_partitions)]


def _list(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    return tuple(part.strip().upper() for part in value.split(",") if part.strip())


def _hosts(value: str) -> tuple[str, ...]:
    """NOTIFY_ALLOWED_HOSTS: host names or addresses, comma-separated, compared lower-case."""
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def _seconds(value: str) -> tuple[int, ...]:
    """NOTIFY_RETRY_INTERVALS: whole seconds, comma-separated (`10,60,300`); empty: no retry."""
    return tuple(int(part) for part in value.split(",") if part.strip())


def _env(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value == "" else value


# The addresses TradingView sends webhooks from (docs/outside/tradingview.md A.2).
TRADINGVIEW_WEBHOOK_ADDRESSES = ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7")


def webhook_allowlist(value: str) -> tuple[str, ...]:
    """WEBHOOK_IP_ALLOWLIST: addresses or networks, comma-separated; `tradingview` stands for
    TradingView's four published addresses (and can be combined with others)."""
    entries: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if entry.lower() == "tradingview":
            entries += TRADINGVIEW_WEBHOOK_ADDRESSES
        elif entry:
            entries.append(entry)
    return tuple(entries)


def metrics_targets(value: str) -> tuple[tuple[str, tuple[str, int]], ...]:
    """METRICS_TARGETS: `name=host:port`, comma-separated, e.g. `engine=engine:8085`."""
    targets = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        name, _, address = entry.partition("=")
        host, _, port = address.strip().rpartition(":")
        if not (name.strip() and host and port.isdigit() and 0 < int(port) < 65_536):
            raise ValueError(
                f"METRICS_TARGETS entry {entry!r} is not name=host:port (e.g. engine=engine:8085)"
            )
        targets.append((name.strip(), (host, int(port))))
    return tuple(targets)


def load_settings(environ: dict[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Read settings from `.env` (if present) overridden by the process environment."""
    env_file = env_file or PROJECT_ROOT / ".env"
    env: dict[str, str] = {}
    if env_file.exists():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    d = Settings()
    var_dir = Path(_env(env, "JT_VAR_DIR", str(d.var_dir)))
    database_url = env.get("DATABASE_URL", "")
    allowlist = webhook_allowlist(env.get("WEBHOOK_IP_ALLOWLIST", ""))
    ui_port = int(_env(env, "UI_PORT", str(d.ui_port)))
    settings = Settings(
        database_url=normalize_database_url(database_url) if database_url else "",
        redis_url=env.get("REDIS_URL", ""),
        queue_redis_url=_queue_redis_url(env),
        secret_key=env.get("SECRET_KEY") or "",
        encryption_key=env.get("ENCRYPTION_KEY") or "",
        public_url=_env(env, "PUBLIC_URL", d.public_url).rstrip("/"),
        stream_prefix=_env(env, "JT_STREAM_PREFIX", d.stream_prefix),
        engine_partitions=_partitions(env.get("ENGINE_PARTITIONS")),
        engine_partition=int(_env(env, "ENGINE_PARTITION", "0")),
        gateway_port=int(_env(env, "GATEWAY_PORT", str(d.gateway_port))),
        ui_port=ui_port,
        price_feed_port=int(_env(env, "PRICE_FEED_PORT", str(d.price_feed_port))),
        engine_port=int(_env(env, "ENGINE_PORT", str(d.engine_port))),
        internal_host=_env(env, "INTERNAL_HOST", d.internal_host),
        executor_metrics_port=int(_env(env, "EXECUTOR_METRICS_PORT", str(d.executor_metrics_port))),
        gateway_metrics_port=int(_env(env, "GATEWAY_METRICS_PORT", str(d.gateway_metrics_port))),
        price_source=_env(env, "PRICE_SOURCE", d.price_source).strip().lower(),
        price_watchlist=_list(env.get("PRICE_WATCHLIST"), d.price_watchlist),
        replay_file=env.get("REPLAY_FILE") or None,
        replay_speed=float(_env(env, "REPLAY_SPEED", str(d.replay_speed))),
        sim_interval_s=float(_env(env, "SIM_INTERVAL_S", str(d.sim_interval_s))),
        tradingview_url=_env(env, "TRADINGVIEW_URL", d.tradingview_url),
        tradingview_ws_url=_env(env, "TRADINGVIEW_WS_URL", d.tradingview_ws_url),
        tradingview_scanner_url=_env(env, "TRADINGVIEW_SCANNER_URL", d.tradingview_scanner_url),
        tradingview_signin_url=env.get("TRADINGVIEW_SIGNIN_URL") or "",
        tradovate_live_url=_env(env, "TRADOVATE_LIVE_URL", d.tradovate_live_url),
        tradovate_demo_url=_env(env, "TRADOVATE_DEMO_URL", d.tradovate_demo_url),
        tradovate_md_url=_env(env, "TRADOVATE_MD_URL", d.tradovate_md_url),
        tradovate_live_ws_url=env.get("TRADOVATE_LIVE_WS_URL", ""),
        tradovate_demo_ws_url=env.get("TRADOVATE_DEMO_WS_URL", ""),
        tradovate_oauth_url=_env(env, "TRADOVATE_OAUTH_URL", d.tradovate_oauth_url),
        tradovate_oauth_client_id=env.get("TRADOVATE_OAUTH_CLIENT_ID") or "",
        tradovate_oauth_client_secret=env.get("TRADOVATE_OAUTH_CLIENT_SECRET") or "",
        ui_public_url=_env(env, "UI_PUBLIC_URL", f"http://localhost:{ui_port}").rstrip("/"),
        tradovate_rate_limit_per_min=int(_env(env, "TRADOVATE_RATE_LIMIT_PER_MIN", "60")),
        executor_workers=max(1, int(_env(env, "EXECUTOR_WORKERS", str(d.executor_workers)))),
        webhook_ip_allowlist=allowlist,
        webhook_rate_limit=int(_env(env, "WEBHOOK_RATE_LIMIT", str(d.webhook_rate_limit))),
        webhook_rate_window_s=int(_env(env, "WEBHOOK_RATE_WINDOW_S", str(d.webhook_rate_window_s))),
        max_signal_qty=int(_env(env, "MAX_SIGNAL_QTY", str(d.max_signal_qty))),
        webhook_dedupe_window_s=int(
            _env(env, "WEBHOOK_DEDUPE_WINDOW_S", str(d.webhook_dedupe_window_s))
        ),
        trust_proxy=_bool(env.get("TRUST_PROXY")),
        metrics_host=_env(env, "METRICS_HOST", d.metrics_host),
        metrics_targets=metrics_targets(env.get("METRICS_TARGETS", "")),
        login_max_failures=int(_env(env, "LOGIN_MAX_FAILURES", str(d.login_max_failures))),
        login_max_failures_per_address=int(
            _env(env, "LOGIN_MAX_FAILURES_PER_ADDRESS", str(d.login_max_failures_per_address))
        ),
        login_window_s=int(_env(env, "LOGIN_WINDOW_S", str(d.login_window_s))),
        login_max_failures_per_email=int(
            _env(env, "LOGIN_MAX_FAILURES_PER_EMAIL", str(d.login_max_failures_per_email))
        ),
        var_dir=var_dir,
        gateway_spool_dir=Path(_env(env, "GATEWAY_SPOOL_DIR", str(var_dir / "spool"))),
        gateway_spool_max=int(_env(env, "GATEWAY_SPOOL_MAX", str(d.gateway_spool_max))),
        log_level=_env(env, "LOG_LEVEL", d.log_level),
        notify_allowed_hosts=_hosts(env.get("NOTIFY_ALLOWED_HOSTS", "")),
        notify_retry_intervals=_seconds(env.get("NOTIFY_RETRY_INTERVALS", "10,60,300")),
        notify_timeout_s=float(_env(env, "NOTIFY_TIMEOUT_S", str(d.notify_timeout_s))),
        discord_api_url=_env(env, "DISCORD_API_URL", d.discord_api_url).rstrip("/"),
        telegram_api_url=_env(env, "TELEGRAM_API_URL", d.telegram_api_url).rstrip("/"),
        smtp_host=env.get("SMTP_HOST", ""),
        smtp_port=int(_env(env, "SMTP_PORT", str(d.smtp_port))),
        smtp_username=env.get("SMTP_USERNAME", ""),
        smtp_password=env.get("SMTP_PASSWORD", ""),
        smtp_from=env.get("SMTP_FROM", ""),
        smtp_starttls=_bool(env.get("SMTP_STARTTLS"), default=d.smtp_starttls),
    )
    return _with_generated_keys(settings)


def _queue_redis_url(env: dict[str, str]) -> str:
    """QUEUE_REDIS_URL: a plain Redis, required beside a cluster REDIS_URL (RQ's MULTI blocks and
    its workers need one server; docs/operations.md "Redis Cluster")."""
    url = env.get("QUEUE_REDIS_URL", "")
    if url.startswith(_CLUSTER_PREFIXES):
        raise ValueError("QUEUE_REDIS_URL must name a plain Redis, not a Redis Cluster")
    if not url and env.get("REDIS_URL", "").startswith(_CLUSTER_PREFIXES):
        raise ValueError(
            "REDIS_URL names a Redis Cluster, which RQ's queues cannot use: set QUEUE_REDIS_URL "
            'to a plain Redis as well (docs/operations.md "Redis Cluster")'
        )
    return url


MAX_ENGINE_PARTITIONS = 64


def _partitions(value: str | None) -> int:
    text = (value or "").strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= MAX_ENGINE_PARTITIONS:
        raise ValueError(
            f"ENGINE_PARTITIONS must be a whole number from 1 to {MAX_ENGINE_PARTITIONS}, "
            f"not {text[:20]!r}"
        )
    return int(text)


def _with_generated_keys(settings: Settings) -> Settings:
    """SECRET_KEY and ENCRYPTION_KEY default to keys generated once into `var/` (mode 0600)."""
    secret_key = settings.secret_key or _persisted_key(
        settings.var_dir / "secret_key", secrets.token_urlsafe(48)
    )
    encryption_key = settings.encryption_key
    if not encryption_key:
        from cryptography.fernet import Fernet

        encryption_key = _persisted_key(
            settings.var_dir / "encryption_key", Fernet.generate_key().decode()
        )
    return replace(settings, secret_key=secret_key, encryption_key=encryption_key)


def _persisted_key(path: Path, fresh: str) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process generated it first
        return path.read_text().strip()
    try:
        os.write(fd, fresh.encode())
    finally:
        os.close(fd)
    return fresh
