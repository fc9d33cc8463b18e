"""The ``wirehub`` command: ``serve``, ``token``, ``check`` and ``genconfig``.

Every failure an operator can cause (a bad setting, a busy port, an unreachable backend, a bad
``--app``) prints one ``error: ...`` line naming what to change and exits with code 2; tracebacks
are for bugs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import wirehub
from wirehub.app import App, Running, load_app, serve, token_secret, with_token_secret
from wirehub.auth.jwt import SigningKey, issue_subscription_token, issue_token, load_signing_key
from wirehub.config import Settings, default_config_toml, load_settings, unknown_env_keys
from wirehub.errors import ConfigError, StartupError
from wirehub.logs import LOG_FORMATS, LOG_LEVELS, configure_logging
from wirehub.types import JSON
from wirehub.workers import WorkerPorts, check_workers, run_workers

__all__ = [
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wirehub", description="Realtime WebSocket gateway.")
    parser.add_argument("--version", action="version", version=f"wirehub {wirehub.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p_serve = commands.add_parser("serve", help="run the gateway")
    p_serve.add_argument("--config", help="TOML configuration file")
    p_serve.add_argument("--app", help="module:attr of an App or Router with channel handlers")
    p_serve.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, metavar="|".join(LOG_LEVELS)
    )
    p_serve.add_argument("--log-format", default="text", choices=LOG_FORMATS, help="text (default) or json")
    p_serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the ports (SO_REUSEPORT), one per core; needs a Redis broker",
    )
    # Set by the supervisor of --workers on each worker it starts: ws,http,internal ports.
    p_serve.add_argument("--worker-ports", type=WorkerPorts.parse, help=argparse.SUPPRESS)

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

    p_check = commands.add_parser(
        "check", help="validate a configuration file (and the WIREHUB_* environment variables)"
    )
    p_check.add_argument("--config", required=True, help="TOML configuration file")

    commands.add_parser("genconfig", help="print a configuration file with every setting at its default")

    args = parser.parse_args(argv)
    if args.command == "genconfig":
        print(default_config_toml(), end="")
        return 0
    try:
        settings = load_settings(args.config)
        match args.command:
            case "serve":
                return _serve(settings, args)
            case "token":
                return _token(settings, args)
            case "check":
                for key in unknown_env_keys(os.environ):
                    print(f"warning: {key}: not a setting, ignored", file=sys.stderr)
                print(f"{args.config}: ok")
                return 0
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse requires a command


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    app = load_app(args.app) if args.app else None
    if app is not None and app.settings is not None:
        settings = app.settings
    if args.worker_ports is not None:
        ports: WorkerPorts = args.worker_ports
        settings = dataclasses.replace(
            settings,
            server=dataclasses.replace(settings.server, port=ports.ws, reuse_port=True),
            http=dataclasses.replace(settings.http, port=ports.http, internal_port=ports.internal),
        )
    if args.workers != 1:
        check_workers(settings, args.workers)
        # Made once here, so that the workers do not race to generate it.
        with_token_secret(settings)
        return asyncio.run(
            run_workers(
                settings,
                args.workers,
                lambda ports: _worker_argv(args, ports),
                announce=lambda line: print(line, flush=True),
            )
        )

    def announce(running: Running) -> None:
        s = running.node.settings
        line = (
            f"wirehub listening on ws://{s.server.host}:{running.gateway.port}{s.server.ws_path}"
            f" and http://{s.http.host}:{running.http.port}"
        )
        if running.http.internal_port is not None:
            line += f" (internal http://{s.http.internal_host}:{running.http.internal_port})"
        print(line, flush=True)

    asyncio.run(serve(settings, app or App(), on_ready=announce))
    return 0


def _worker_argv(args: argparse.Namespace, ports: WorkerPorts) -> list[str]:
    argv = [sys.executable, "-m", "wirehub.cli", "serve", "--worker-ports", ports.argument()]
    argv += ["--log-level", args.log_level, "--log-format", args.log_format]
    if args.config:
        argv += ["--config", args.config]
    if args.app:
        argv += ["--app", args.app]
    return argv


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
        # Never generates a secret: a token signed with one the gateway does not know is useless.
        key = token_secret(settings)
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
