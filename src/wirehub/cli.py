"""The ``wirehub`` command: ``serve``, ``token`` and ``check``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from wirehub.app import App, Running, load_app, serve, with_token_secret
from wirehub.auth.jwt import SigningKey, issue_subscription_token, issue_token, load_signing_key
from wirehub.config import Settings, load_settings
from wirehub.errors import ConfigError
from wirehub.types import JSON


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wirehub", description="Realtime WebSocket gateway.")
    commands = parser.add_subparsers(dest="command", required=True)

    p_serve = commands.add_parser("serve", help="run the gateway")
    p_serve.add_argument("--config", help="TOML configuration file")
    p_serve.add_argument("--app", help="module:attr of an App or Router with channel handlers")
    p_serve.add_argument("--log-level", default="INFO")

    p_token = commands.add_parser(
        "token",
        help="print a connection (or, with --channel, subscription) token the gateway accepts",
        description="Signs with the configured HMAC secret, or with --private-key; adds the configured"
        " auth.token_audience and auth.token_issuer as aud and iss.",
    )
    p_token.add_argument("--config", help="TOML configuration file")
    p_token.add_argument("--user", required=True, help="user id (the sub claim)")
    p_token.add_argument("--ttl", type=int, default=3600, help="seconds until expiry; 0 for none")
    p_token.add_argument("--info", help="JSON connection info (channel info with --channel)")
    p_token.add_argument("--channels", default="", help="comma-separated server-side subscriptions")
    p_token.add_argument("--channel", help="issue a subscription token for this channel instead")
    p_token.add_argument(
        "--private-key", help="PEM private key file (RSA, ECDSA or Ed25519) to sign with, not the secret"
    )
    p_token.add_argument("--algorithm", help="e.g. HS512 or RS384; defaults follow the key")
    p_token.add_argument("--kid", default="", help="key id for the header (keys from a JWKS)")

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

    def announce(running: Running) -> None:
        s = running.node.settings
        print(
            f"wirehub listening on ws://{s.server.host}:{running.gateway.port}{s.server.ws_path}"
            f" and http://{s.http.host}:{running.http.port}",
            flush=True,
        )

    try:
        asyncio.run(serve(settings, app or App(), on_ready=announce))
    except ConfigError as exc:
        # Problems only a backend finds when it starts (e.g. a malformed MongoDB URL).
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    key: SigningKey
    if args.private_key:
        try:
            key = load_signing_key(Path(args.private_key).read_bytes())
        except OSError as exc:
            print(f"error: --private-key: cannot read {args.private_key}: {exc.strerror}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"error: --private-key: {exc}", file=sys.stderr)
            return 2
    else:
        key = with_token_secret(settings).auth.token_hmac_secret
        if not key:
            print(
                "error: auth.token_hmac_secret: no HMAC secret configured; sign with --private-key",
                file=sys.stderr,
            )
            return 2
    try:
        info = json.loads(args.info) if args.info else None
    except json.JSONDecodeError as exc:
        print(f"error: --info is not JSON: {exc}", file=sys.stderr)
        return 2
    extra: dict[str, JSON] = {}
    if settings.auth.token_audience:
        extra["aud"] = settings.auth.token_audience
    if settings.auth.token_issuer:
        extra["iss"] = settings.auth.token_issuer
    user: str = args.user
    ttl_s: int | None = args.ttl or None
    try:
        if args.channel:
            token = issue_subscription_token(
                key,
                user=user,
                channel=args.channel,
                ttl_s=ttl_s,
                info=info,
                algorithm=args.algorithm,
                extra=extra,
                kid=args.kid,
            )
        else:
            token = issue_token(
                key,
                user=user,
                ttl_s=ttl_s,
                info=info,
                channels=[c for c in args.channels.split(",") if c],
                algorithm=args.algorithm,
                extra=extra,
                kid=args.kid,
            )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
