"""``python -m airflow_provider_messagecentral.sandbox``: serve the MessageCentral sandbox."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from airflow_provider_messagecentral.sandbox.config import FIELD_TYPES, FIVE_YEARS, SandboxConfig, redact_url

CALLBACK_URL_ENV = "MESSAGECENTRAL_SANDBOX_CALLBACK_URL"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_messagecentral.sandbox",
        description="Local look-alike of the MessageCentral Message Now API (token, send, delivery reports), "
        "with admin endpoints under /__sandbox/ for the request log and fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8099, help="port to listen on (default 8099; 0 = any free)")
    parser.add_argument("--customer-id", default="C-SANDBOX0000001", help="the account's customer id")
    parser.add_argument(
        "--password", default="sandbox", help="the account password (the token call's key is its base64)"
    )
    parser.add_argument("--email", default="sandbox@example.com", help="the account's registered e-mail")
    parser.add_argument("--country", default="91", help="the account's dialling code (default 91)")
    parser.add_argument(
        "--token-ttl", type=float, default=FIVE_YEARS, metavar="SECONDS", help="token lifetime (default 5 years)"
    )
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="delay of every API answer")
    parser.add_argument(
        "--callback-url",
        default=None,
        metavar="URL",
        help=f"where to POST delivery reports; better set {CALLBACK_URL_ENV} (the URL holds a secret)",
    )
    parser.add_argument("--callback-delay", type=float, default=1.0, metavar="SECONDS", help="default 1.0")
    parser.add_argument(
        "--status-mix",
        default="DELIVRD=1",
        metavar="MIX",
        help="delivery status weights, e.g. DELIVRD=0.9,UNDELIV=0.05,EXPIRED=0.05 (also REJECTD, UNKNOWN)",
    )
    parser.add_argument("--duplicates", type=float, default=0.0, metavar="FRACTION", help="reports sent twice")
    parser.add_argument(
        "--out-of-order",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="messages whose final report is followed by a stale UNKNOWN",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible random choices")
    parser.add_argument(
        "--balance", type=float, default=1e9, metavar="CREDITS", help="the account's credit (sends consume it)"
    )
    parser.add_argument(
        "--credit-per-segment", type=float, default=1.0, metavar="CREDITS", help="cost of one segment (default 1)"
    )
    parser.add_argument(
        "--field-types",
        choices=FIELD_TYPES,
        default="documented",
        help="codes and ids as documented, all strings or all ints",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request (slow)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    callback_url = args.callback_url or os.environ.get(CALLBACK_URL_ENV) or None
    try:
        config = SandboxConfig(
            customer_id=args.customer_id,
            password=args.password,
            email=args.email,
            country=args.country,
            token_ttl=args.token_ttl,
            latency=args.latency,
            callback_url=callback_url,
            callback_delay=args.callback_delay,
            status_mix=args.status_mix,
            duplicates=args.duplicates,
            out_of_order=args.out_of_order,
            seed=args.seed,
            balance=args.balance,
            credit_per_segment=args.credit_per_segment,
            field_types=args.field_types,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import uvicorn

    from airflow_provider_messagecentral.sandbox.app import create_app

    print(
        f"MessageCentral sandbox on http://{args.host}:{args.port} (customer id {config.customer_id}, "
        f"e-mail {config.email}); delivery reports to {redact_url(callback_url) or 'nowhere'}",
        flush=True,
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=args.access_log,
        lifespan="off",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
