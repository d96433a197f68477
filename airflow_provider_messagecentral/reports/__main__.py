"""
Command line of the delivery-report receiver.

``python -m airflow_provider_messagecentral.reports serve --host 127.0.0.1 --port 8098 --store-url URL``
(secret from ``$MESSAGECENTRAL_CALLBACK_SECRET`` only: a CLI argument would show in ``ps``), and
``python -m airflow_provider_messagecentral.reports summary CAMPAIGN_KEY`` (prints JSON), and the suppression
table: ``suppression add NUMBER... [--file F] [--reason R]``, ``suppression remove NUMBER... [--file F]``,
``suppression list [--page N] [--page-size N]`` (JSON). National numbers are read with ``--country`` (default 91).
"""

from __future__ import annotations

import argparse
import json
import sys

from airflow_provider_messagecentral.client.store_url import STORE_URL_ENV, receiver_store_url
from airflow_provider_messagecentral.reports.receiver_config import SECRET_ENV


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_messagecentral.reports",
        description=f"MessageCentral delivery-report receiver. The callback secret is read from ${SECRET_ENV}.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the receiver (uvicorn, one worker, access log off)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8098)
    serve.add_argument("--store-url", default=None, help=f"SQLAlchemy URL (default ${STORE_URL_ENV} or SQLite)")
    serve.add_argument("--max-body-bytes", type=int, default=65536)
    serve.add_argument("--allowed-ip", action="append", default=None, help="sender IP or network; repeatable")
    serve.add_argument("--timezone", default="UTC", help="zone of report dates without one (default UTC)")
    serve.add_argument("--no-read-auth", action="store_true", help="serve read endpoints without a bearer token")
    serve.add_argument("--log-level", default="info")
    summary = sub.add_parser("summary", help="print a campaign's delivery summary as JSON")
    summary.add_argument("campaign_key")
    summary.add_argument("--store-url", default=None)
    suppression = sub.add_parser("suppression", help="numbers never to text: add, remove, list")
    actions = suppression.add_subparsers(dest="action", required=True)
    for name, text in (("add", "add numbers"), ("remove", "remove numbers")):
        action = actions.add_parser(name, help=text)
        action.add_argument("numbers", nargs="*", help="phone numbers (national ones read with --country)")
        action.add_argument("--file", default=None, help="a .csv/.txt file of numbers (as audiences are read)")
        action.add_argument("--country", default="91", help="dialling code of national numbers (default 91)")
        action.add_argument("--store-url", default=None, help=f"SQLAlchemy URL (default ${STORE_URL_ENV} or SQLite)")
        if name == "add":
            action.add_argument("--reason", default="", help="why, e.g. 'STOP reply'")
    listing = actions.add_parser("list", help="print one page of the suppression table as JSON")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--page-size", type=int, default=100)
    listing.add_argument("--store-url", default=None)
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "suppression":
        return _suppression(args, receiver_store_url(args.store_url))
    if args.command == "summary":
        from airflow_provider_messagecentral.reports.store import get_store

        store = get_store(receiver_store_url(args.store_url))
        result = store.campaign_summary(args.campaign_key)
        if result is None:
            print(f"unknown campaign {args.campaign_key!r} in {store.masked_url}", file=sys.stderr)
            return 1
        print(json.dumps(result, indent=2))
        return 0

    import uvicorn

    from airflow_provider_messagecentral.reports.app import create_app

    try:
        app = create_app(
            args.store_url,
            max_body_bytes=args.max_body_bytes,
            allowed_ips=args.allowed_ip,
            timezone=args.timezone,
            require_read_auth=not args.no_read_auth,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # The callback secret is part of the path: uvicorn's access log would print it.
    uvicorn.run(app, host=args.host, port=args.port, workers=1, access_log=False, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
