"""`leadheat serve | worker | migrate | sites create | list | rotate-secret | users create | list |
secrets reencrypt`."""

import argparse
import asyncio
import errno
import getpass
import logging.config
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from prometheus_client import start_http_server
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from app import logs, metrics, onboarding, server
from app.background import BackgroundContext
from app.channels.models import TelegramBot
from app.config import Settings, get_settings
from app.crypto import SecretsKeyError, secret_box
from app.db import make_engine, make_sessionmaker, writer
from app.errors import AppError
from app.migrate import upgrade
from app.scoring.scorer import RuleSetCache
from app.sites import service as sites_service
from app.team import service as team_service
from app.team.schemas import UserCreate
from app.webhooks.models import WebhookEndpoint
from app.webhooks.service import reencrypt_secrets
from app.worker import BackgroundRunner, lead_change_consumers


class CommandError(Exception):
    """A message for the operator; the command exits with status 2."""


def _print_keys(created: sites_service.CreatedSite) -> None:
    print(f"Site:       {created.site.name} ({created.site.id})")
    print(f"Write key:  {created.write_key}   (public: goes into the shop's pages)")
    print(f"Secret key: {created.secret_key}   (shown once: keep it on your server)")


async def _create_site(settings: Settings, name: str, origins: list[str]) -> None:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            created = await onboarding.create_site(session, name, origins)
            await session.commit()
        _print_keys(created)
    finally:
        await engine.dispose()


async def _list_sites(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            for site in await sites_service.list_sites(session):
                origins = ", ".join(site.allowed_origins) or "any origin"
                print(f"{site.id}  {site.write_key}  {site.name}  [{origins}]")
    finally:
        await engine.dispose()


async def _ensure_demo_site(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            if await sites_service.count_sites(session):
                return
            created = await onboarding.create_site(session, "Demo shop", [])
            await session.commit()
        print("First start: created a demo site.")
        _print_keys(created)
    finally:
        await engine.dispose()


async def _rotate_secret_key(settings: Settings, ref: str) -> None:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(writer(engine))() as session:
            found = await sites_service.find_site(session, ref)
            if not found:
                raise CommandError(f"No site has the id or name {ref!r} (see `sites list`).")
            if len(found) > 1:
                ids = ", ".join(str(site.id) for site in found)
                raise CommandError(f"Several sites are named {ref!r}; give the id: {ids}.")
            site = found[0]
            secret_key = await sites_service.rotate_secret_key(
                session, site.id, site.secret_key_hash
            )
            if secret_key is None:
                raise CommandError("The key changed meanwhile (rotated elsewhere); try again.")
            await session.commit()
        print(f"Site:       {site.name} ({site.id})")
        print(f"Secret key: {secret_key}   (shown once; the previous secret key has stopped)")
    finally:
        await engine.dispose()


async def _one_site(session: Any, ref: str) -> sites_service.Site:
    found = await sites_service.find_site(session, ref)
    if not found:
        raise CommandError(f"No site has the id or name {ref!r} (see `sites list`).")
    if len(found) > 1:
        ids = ", ".join(str(site.id) for site in found)
        raise CommandError(f"Several sites are named {ref!r}; give the id: {ids}.")
    return found[0]


def _read_password(from_stdin: bool) -> str:
    """From stdin's first line (scripts), else typed twice at a prompt: never an argument,
    which any user of the machine could read in `ps`."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CommandError(
            "No terminal to prompt on: give the password on stdin (--password-stdin)."
        )
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Password again: "):
        raise CommandError("The two passwords differ.")
    return password


async def _create_user(settings: Settings, args: argparse.Namespace) -> None:
    try:
        data = UserCreate(
            email=args.email,
            password=_read_password(args.password_stdin),
            role=args.role,
            name=args.name,
            time_zone=args.time_zone,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CommandError(problems) from None
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(writer(engine))() as session:
            site = await _one_site(session, args.site)
            try:
                user = await team_service.create_user(session, site.id, data)
            except AppError as exc:
                raise CommandError(exc.message) from None
            await session.commit()
        print(f"Created {user.role} {user.email} ({user.id}) of {site.name} ({site.id}).")
    finally:
        await engine.dispose()


async def _list_users(settings: Settings, ref: str) -> None:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            site = await _one_site(session, ref)
            for user in await team_service.list_users(session, site.id):
                state = "active" if user.active else "deactivated"
                duty = "on duty" if user.on_duty else "off duty"
                print(f"{user.id}  {user.email}  {user.role}  {state}  {duty}  {user.name}")
    finally:
        await engine.dispose()


async def _check_secrets(settings: Settings) -> None:
    """Before serving: the key exists (PostgreSQL: configured) and decrypts what is stored, so
    that a wrong key stops the start with a clear message, not webhooks later."""
    box = secret_box(settings)
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            stored = await conn.scalar(select(WebhookEndpoint.secret_encrypted).limit(1))
    finally:
        await engine.dispose()
    if stored is not None:
        box.decrypt(stored)


async def _reencrypt_secrets(settings: Settings) -> None:
    box = secret_box(settings)
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(writer(engine))() as session:
            count = await reencrypt_secrets(session, box)
            bots = (await session.scalars(select(TelegramBot))).all()
            for bot in bots:
                bot.token_encrypted = box.reencrypt(bot.token_encrypted)
            await session.commit()
    finally:
        await engine.dispose()
    print(
        f"Re-encrypted the secrets of {count} webhook endpoint(s) and channel(s) and"
        f" {len(bots)} Telegram bot token(s) with the first key."
    )


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    host = args.host if args.host is not None else settings.host
    port = args.port if args.port is not None else settings.port
    workers = args.workers if args.workers is not None else settings.workers
    # Before migrating: a port that is taken stops the start at once, with one line.
    _check_can_listen(host, port)
    # Until uvicorn applies the same: what migrating and the key check log is formatted too.
    logging.config.dictConfig(logs.logging_config(settings.log_level, settings.log_format))
    if settings.auto_migrate and not args.no_migrate:
        upgrade(settings.database_url)
    asyncio.run(_check_secrets(settings))
    if settings.create_demo_site:
        asyncio.run(_ensure_demo_site(settings))
    print(f"Leadheat listening on http://{host}:{port}", flush=True)
    try:
        with metrics.multiprocess_directory(workers):
            server.run(
                "app.main:create_served_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                on_worker_exit=metrics.worker_exited,
                log_level=settings.log_level,
                log_config=logs.logging_config(settings.log_level, settings.log_format),
                access_log=False,  # uvicorn's; Leadheat's own is LEADHEAT_ACCESS_LOG (app.metrics)
                proxy_headers=True,
                header_timeout=(
                    args.header_timeout
                    if args.header_timeout is not None
                    else settings.http.header_timeout_seconds
                ),
                body_timeout=(
                    args.body_timeout
                    if args.body_timeout is not None
                    else settings.http.body_timeout_seconds
                ),
            )
    except OSError as exc:  # taken meanwhile (the workers' sockets are bound after the check)
        raise CommandError(_cannot_listen(host, port, exc)) from None


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    if exc.errno == errno.EADDRINUSE:
        message += " (another process listens there: stop it, or choose --port / LEADHEAT_PORT)"
    return message


def _check_can_listen(host: str, port: int) -> None:
    if port == 0:  # any free port
        return
    try:
        server.check_can_listen(host, port)
    except OSError as exc:
        raise CommandError(_cannot_listen(host, port, exc)) from None


async def _worker(settings: Settings, metrics_port: int | None) -> None:
    logging.config.dictConfig(logs.logging_config(settings.log_level, settings.log_format))
    port = metrics_port or settings.metrics.worker_port
    if port:  # its own loops' metrics (delivery, timers); the database's are the API's
        start_http_server(port, settings.metrics.worker_host, metrics.process_registry())
    await _check_secrets(settings)
    engine = make_engine(settings)
    rule_sets = RuleSetCache(settings.scoring.rule_set_cache_seconds)
    lead_changes, memberships = lead_change_consumers(settings.webhooks, rule_sets)
    runner = BackgroundRunner(
        BackgroundContext(
            settings,
            engine,
            make_sessionmaker(writer(engine)),
            rule_sets,
            lead_changes=lead_changes,
            memberships=memberships,
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner.start()
    print("Leadheat worker running (Ctrl-C to stop).", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.stop()
        await engine.dispose()


def _version() -> str:
    try:
        return metadata.version("leadheat")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _setting(name: str) -> tuple[Any, str]:
    """A setting's default and its environment variable, from app.config (`http__port`...)."""
    model: type[BaseModel] = Settings
    *groups, field = name.split("__")
    for group in groups:
        model = model.model_fields[group].annotation  # type: ignore[assignment]
    default = model.model_fields[field].get_default(call_default_factory=True)
    return default, f"LEADHEAT_{name.upper()}"


def _from_setting(what: str, name: str) -> str:
    """Help for an option that overrides a setting: what it is, its default, its variable."""
    default, variable = _setting(name)
    return f"{what} (default: {default}; environment: {variable})"


DATABASE_EPILOG = (
    "The database is LEADHEAT_DATABASE_URL (default: {}). Every setting is a LEADHEAT_"
    " environment variable (README, Configuration); an option given here wins over its"
    " variable.".format(_setting("database_url")[0])
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadheat", description=__doc__, epilog=DATABASE_EPILOG)
    parser.add_argument("--version", action="version", version=f"leadheat {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(parent: Any, name: str, help: str) -> argparse.ArgumentParser:
        created: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help, epilog=DATABASE_EPILOG
        )
        return created

    serve = command(sub, "serve", "migrate, then serve the API")
    serve.add_argument("--host", help=_from_setting("address to listen on", "host"))
    serve.add_argument("--port", type=int, help=_from_setting("port to listen on", "port"))
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=_from_setting("server processes, each on its own SO_REUSEPORT socket", "workers"),
    )
    _, auto_migrate = _setting("auto_migrate")
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help=f"do not apply migrations before listening (default: migrate; environment:"
        f" {auto_migrate}=false does the same)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        metavar="SECONDS",
        help=_from_setting(
            "close a connection whose request headers take longer", "http__header_timeout_seconds"
        ),
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        metavar="SECONDS",
        help=_from_setting(
            "answer 408 and close when a request body takes longer after its headers",
            "http__body_timeout_seconds",
        ),
    )
    command(sub, "migrate", "apply pending database migrations")
    worker = command(sub, "worker", "run background work only (delivery, timers, re-scoring)")
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help=_from_setting(
            "serve this worker's Prometheus metrics on PORT (none: not served)",
            "metrics__worker_port",
        ),
    )
    sites = command(sub, "sites", "manage sites (shops)")
    sites_sub = sites.add_subparsers(dest="sites_command", required=True)
    create = command(sites_sub, "create", "create a site and print its keys once")
    create.add_argument(
        "--name", required=True, help="the site's name (required; no environment variable)"
    )
    create.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="URL",
        help="a page origin allowed to send events, e.g. https://shop.example; repeatable"
        " (default: none, so any origin; no environment variable)",
    )
    command(sites_sub, "list", "list sites")
    rotate = command(
        sites_sub,
        "rotate-secret",
        "give a site a new secret key (printed once; the old one stops)",
    )
    rotate.add_argument("site", help="the site's id, or its name (required)")
    users = command(sub, "users", "manage a site's people (admins and managers)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    site_help = "the site's id, or its name (required; no environment variable)"
    user_create = command(
        users_sub, "create", "add a person to a site; the password is prompted for (or stdin)"
    )
    user_create.add_argument("--site", required=True, help=site_help)
    user_create.add_argument(
        "--email",
        required=True,
        help="their email, unique per site (required; no environment variable)",
    )
    user_create.add_argument(
        "--role",
        required=True,
        choices=["admin", "manager"],
        help="admin: rules, webhooks, team, settings; manager: leads, contacts, statuses"
        " (required; no environment variable)",
    )
    user_create.add_argument(
        "--name", default="", help="their name (default: none; no environment variable)"
    )
    user_create.add_argument(
        "--time-zone",
        default="UTC",
        metavar="ZONE",
        help="their IANA time zone, e.g. Europe/Moscow (default: UTC; no environment variable)",
    )
    user_create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin, for scripts (default: prompt for"
        " it twice; no environment variable)",
    )
    user_list = command(users_sub, "list", "list a site's people")
    user_list.add_argument("--site", required=True, help=site_help)
    keys = command(sub, "secrets", "the key that encrypts webhook secrets")
    keys_sub = keys.add_subparsers(dest="secrets_command", required=True)
    command(
        keys_sub,
        "reencrypt",
        f"re-encrypt every webhook secret with the first key of {_setting('secrets_key')[1]}",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _run(args)
    except (CommandError, SecretsKeyError) as exc:
        print(f"leadheat: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> None:
    settings = get_settings()
    if args.command == "serve":
        _serve(settings, args)
    elif args.command == "worker":
        asyncio.run(_worker(settings, args.metrics_port))
    elif args.command == "migrate":
        upgrade(settings.database_url)
        print("Database is up to date.")
    elif args.command == "secrets":
        asyncio.run(_reencrypt_secrets(settings))
    elif args.command == "users":
        if args.users_command == "create":
            asyncio.run(_create_user(settings, args))
        else:
            asyncio.run(_list_users(settings, args.site))
    elif args.sites_command == "create":
        asyncio.run(_create_site(settings, args.name, args.origin))
    elif args.sites_command == "rotate-secret":
        asyncio.run(_rotate_secret_key(settings, args.site))
    else:
        asyncio.run(_list_sites(settings))


if __name__ == "__main__":
    sys.exit(main())
