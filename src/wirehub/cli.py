"""The ``wirehub`` command: ``serve``, ``token`` and ``check``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from wirehub.app import Running, load_app, serve, with_token_secret
from wirehub.auth.jwt import issue_token
from wirehub.config import Settings, load_settings
from wirehub.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wirehub", description="Realtime WebSocket gateway.")
    commands = parser.add_subparsers(dest="command", required=True)

    p_serve = commands.add_parser("serve", help="run the gateway")
    p_serve.add_argument("--config", help="TOML configuration file")
    p_serve.add_argument("--app", help="module:attr of an App or Router with channel handlers")
    p_serve.add_argument("--log-level", default="INFO")

    p_token = commands.add_parser("token", help="print a connection token signed with the configured secret")
    p_token.add_argument("--config", help="TOML configuration file")
    p_token.add_argument("--user", required=True, help="user id (the sub claim)")
    p_token.add_argument("--ttl", type=int, default=3600, help="seconds until expiry; 0 for none")
    p_token.add_argument("--info", help="JSON connection info shown to other clients")
    p_token.add_argument("--channels", default="", help="comma-separated server-side subscriptions")

    p_check = commands.add_parser("check", help="validate a configuration file")
    p_check.add_argument("--config", required=True, help="TOML configuration file")

    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    match args.command:
        case "serve":
            return _serve(settings, args)
        case "token":
            return _token(settings, args)
        case "check":
            print(f"{args.config}: ok")
            return 0
    return 2  # pragma: no cover - argparse requires a command


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = load_app(args.app) if args.app else None
    if app is not None and app.settings is not None:
        settings = app.settings
    router = app.router if app is not None else None

    def announce(running: Running) -> None:
        s = running.node.settings
        print(
            f"wirehub listening on ws://{s.server.host}:{running.gateway.port}{s.server.ws_path}"
            f" and http://{s.http.host}:{running.http.port}",
            flush=True,
        )

    from wirehub.channels.router import Router

    asyncio.run(serve(settings, router or Router(), on_ready=announce))
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    settings = with_token_secret(settings)
    secret = settings.auth.token_hmac_secret
    if not secret:
        print("error: auth.token_hmac_secret: tokens are signed with an HMAC secret", file=sys.stderr)
        return 2
    try:
        info = json.loads(args.info) if args.info else None
    except json.JSONDecodeError as exc:
        print(f"error: --info is not JSON: {exc}", file=sys.stderr)
        return 2
    channels = [c for c in args.channels.split(",") if c]
    print(issue_token(secret, user=args.user, ttl_s=args.ttl or None, info=info, channels=channels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
