"""
Command line of the delivery-report receiver.

``python -m airflow_provider_messagecentral.reports serve --host 127.0.0.1 --port 8098 [--workers N]`` (secret
from ``$MESSAGECENTRAL_CALLBACK_SECRET`` only: a CLI argument would show in ``ps``), and
``python -m airflow_provider_messagecentral.reports summary CAMPAIGN_KEY`` (prints JSON), and the suppression
table: ``suppression add NUMBER... [--file F] [--reason R]``, ``suppression remove NUMBER... [--file F]``,
``suppression list [--page N] [--page-size N]`` (JSON). National numbers are read with ``--country`` (default 91).

Every command uses the report store the ``messagecentral`` connection names (``--conn-id``, default
``$MESSAGECENTRAL_CONN_ID``, else ``[messagecentral] conn_id``, else ``messagecentral_default``): the store the
operators and the delivery sensor use. ``--store-url`` / ``$MESSAGECENTRAL_REPORTS_URL`` override it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from airflow_provider_messagecentral.client.store_url import (
    CONN_ID_ENV,
    DEFAULT_CONN_ID,
    STORE_URL_ENV,
    StoreChoice,
    choose_receiver_store,
)
from airflow_provider_messagecentral.reports.receiver_config import SECRET_ENV, log_store_choice

APP_FACTORY = "airflow_provider_messagecentral.reports.app:create_app_from_env"


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conn-id",
        default=None,
        help=f"the messagecentral connection naming the report store (default ${CONN_ID_ENV}, else "
        f"[messagecentral] conn_id, else {DEFAULT_CONN_ID})",
    )
    parser.add_argument(
        "--store-url", default=None, help=f"SQLAlchemy URL overriding the connection's store (also ${STORE_URL_ENV})"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_messagecentral.reports",
        description=f"MessageCentral delivery-report receiver. The callback secret is read from ${SECRET_ENV}.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the receiver (uvicorn, access log off)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8098)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    _store_options(serve)
    serve.add_argument("--max-body-bytes", type=int, default=65536)
    serve.add_argument("--allowed-ip", action="append", default=None, help="sender IP or network; repeatable")
    serve.add_argument("--timezone", default="UTC", help="zone of report dates without one (default UTC)")
    serve.add_argument("--no-read-auth", action="store_true", help="serve read endpoints without a bearer token")
    serve.add_argument("--log-level", default="info")
    summary = sub.add_parser("summary", help="print a campaign's delivery summary as JSON")
    summary.add_argument("campaign_key")
    _store_options(summary)
    suppression = sub.add_parser("suppression", help="numbers never to text: add, remove, list")
    actions = suppression.add_subparsers(dest="action", required=True)
    for name, text in (("add", "add numbers"), ("remove", "remove numbers")):
        action = actions.add_parser(name, help=text)
        action.add_argument("numbers", nargs="*", help="phone numbers (national ones read with --country)")
        action.add_argument("--file", default=None, help="a .csv/.txt file of numbers (as audiences are read)")
        action.add_argument("--country", default="91", help="dialling code of national numbers (default 91)")
        _store_options(action)
        if name == "add":
            action.add_argument("--reason", default="", help="why, e.g. 'STOP reply'")
    listing = actions.add_parser("list", help="print one page of the suppression table as JSON")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--page-size", type=int, default=100)
    _store_options(listing)
    return parser


def _suppression(args: argparse.Namespace, store_url: str) -> int:
    from pathlib import Path

    from airflow_provider_messagecentral.audience.sources import read_number_file
    from airflow_provider_messagecentral.exceptions import MessageCentralValidationError
    from airflow_provider_messagecentral.safety import suppression

    if args.action == "list":
        print(json.dumps(suppression.list_suppression(args.page, args.page_size, store_url=store_url), indent=2))
        return 0
    numbers: list[object] = list(args.numbers)
    try:
        if args.file:
            numbers.extend(read_number_file(Path(args.file)).values)
        if not numbers:
            print("error: give numbers or --file", file=sys.stderr)
            return 2
        if args.action == "add":
            changed = suppression.suppress(numbers, reason=args.reason, country=args.country, store_url=store_url)
            print(json.dumps({"added": changed, "given": len(numbers)}))
        else:
            changed = suppression.unsuppress(numbers, country=args.country, store_url=store_url)
            print(json.dumps({"removed": changed, "given": len(numbers)}))
    except MessageCentralValidationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _summary(args: argparse.Namespace, store_url: str) -> int:
    from airflow_provider_messagecentral.reports.store import get_store

    store = get_store(store_url)
    result = store.campaign_summary(args.campaign_key)
    if result is None:
        print(f"unknown campaign {args.campaign_key!r} in {store.masked_url}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from airflow_provider_messagecentral.reports.app import OPTIONS_ENV, receiver_options_env
    from airflow_provider_messagecentral.reports.receiver_config import ReceiverConfig

    if args.workers < 1:
        print(f"error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    options = {
        "max_body_bytes": args.max_body_bytes,
        "allowed_ips": args.allowed_ip,
        "timezone": args.timezone,
        "require_read_auth": not args.no_read_auth,
    }
    try:
        ReceiverConfig.create(**options)  # the secret and the limits, checked before the store is looked up
        choice = _choose(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Every worker imports the app factory and reads its options (and the store chosen here) from the
    # environment: the callback secret stays in $MESSAGECENTRAL_CALLBACK_SECRET, never on a command line.
    os.environ[OPTIONS_ENV] = receiver_options_env(options, choice)
    # The callback secret is part of the path: uvicorn's access log would print it.
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level=args.log_level,
    )
    return 0


def _choose(args: argparse.Namespace) -> StoreChoice:
    choice = choose_receiver_store(args.store_url, args.conn_id)
    log_store_choice(choice)
    return choice


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return _serve(args)
    try:
        store_url = _choose(args).url
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "suppression":
        return _suppression(args, store_url)
    return _summary(args, store_url)


if __name__ == "__main__":
    sys.exit(main())
