"""Command line of the bank gateway.

    python -m gateway.bank_api serve  --profile P --msp USBankMSP [--port N]   # HTTP API + follower
    python -m gateway.bank_api follow --profile P --msp USBankMSP              # follower only
    python -m gateway.bank_api migrate --profile P --msp USBankMSP             # schema only
    python -m gateway.bank_api operator-key --profile P --msp USBankMSP        # print/create the key file

Without --profile, settings come from BANK_API_* variables (see config.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from gateway.bank_api.config import ConfigError, GatewayConfig
from gateway.bank_api.logs import configure_logging


def _config(args: argparse.Namespace, **overrides: Any) -> GatewayConfig:
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.profile:
        if not args.msp:
            raise ConfigError("--msp is required with --profile")
        # The documented precedence (config.py): the profile, then the file and BANK_API_* variables;
        # the command line last. Profile and bank come from the command line here.
        settings = GatewayConfig.env_settings()
        for name in ("profile_path", "msp_id"):
            settings.pop(name, None)
        config = GatewayConfig.from_profile(args.profile, args.msp, **{**settings, **overrides})
    else:
        config = GatewayConfig.from_env().with_overrides(**overrides)
    if not config.msp_id:
        raise ConfigError("no bank given: pass --profile and --msp, or set BANK_API_PROFILE and BANK_API_MSP")
    return config


def _wait_for_signal() -> None:
    stop = threading.Event()

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.bank_api", description="Bank REST gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the HTTP API (waitress) with the event follower and webhook sender"),
        ("follow", "run only the event follower, sweeper and webhook sender"),
        ("migrate", "create or upgrade the database schema"),
        ("operator-key", "make sure the operator key file exists and print its path"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--profile", help="profile.json written by the network tool")
        command.add_argument("--msp", help="the bank's MSP id, e.g. USBankMSP")
        command.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite next to the operator key)")
        if name == "serve":
            command.add_argument("--host", help="listen address (default from the profile's gateway_url)")
            command.add_argument("--port", type=int, help="listen port (default from the profile's gateway_url)")
            command.add_argument("--no-follow", action="store_true", help="do not follow events in this process")
            command.add_argument("--threads", type=int, help="request threads (default 64)")
    args = parser.parse_args(argv)

    try:
        if args.command == "serve":
            overrides: dict[str, Any] = {
                "follow_events": not args.no_follow,
                "deliver_webhooks": not args.no_follow,
            }
            if args.host:
                overrides["host"] = args.host
            if args.port:
                overrides["port"] = args.port
            if args.threads:
                overrides["http_threads"] = args.threads
            config = _config(args, **overrides)
        elif args.command == "follow":
            config = _config(args, follow_events=True, deliver_webhooks=True)
        else:
            config = _config(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)

    from gateway.bank_api.app import create_app

    if args.command == "migrate":
        from gateway.bank_api.storage.db import Database

        Database(config.database_url).migrate()
        return 0
    if args.command == "operator-key":
        from gateway.bank_api.auth import KeyStore
        from gateway.bank_api.storage.db import Database

        db = Database(config.database_url)
        db.migrate()
        KeyStore(db).ensure_operator_key_file(config.operator_key_file)
        print(config.operator_key_file)
        return 0

    app = create_app(config)
    services = app.extensions["bank_api"]
    try:
        if args.command == "follow":
            _wait_for_signal()
        else:
            from gateway.bank_api.server import serve

            serve(app, config)
    finally:
        services.stop_workers()
        services.ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
