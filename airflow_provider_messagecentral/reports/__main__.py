"""
Command line of the delivery-report receiver.

``python -m airflow_provider_messagecentral.reports serve --host 127.0.0.1 --port 8098 --store-url URL``
(secret from ``$MESSAGECENTRAL_CALLBACK_SECRET`` only: a CLI argument would show in ``ps``), and
``python -m airflow_provider_messagecentral.reports summary CAMPAIGN_KEY`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json
import sys

from airflow_provider_messagecentral.reports.app import SECRET_ENV, STORE_URL_ENV


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "summary":
        import os

        from airflow_provider_messagecentral.reports.store import default_store_url, get_store

        store = get_store(args.store_url or os.environ.get(STORE_URL_ENV) or default_store_url())
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
