"""Interim demo: start the sandbox, send through MessageCentralHook, print what the sandbox received."""

from __future__ import annotations

import json
import os
import tempfile
import time

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="mc-demo-"))

from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook  # noqa: E402
from airflow_provider_messagecentral.sandbox.server import SandboxServer  # noqa: E402


def main() -> None:
    with SandboxServer() as sandbox:
        os.environ["AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT"] = json.dumps(
            {
                "conn_type": "messagecentral",
                "host": sandbox.url,
                "login": "C-SANDBOX0000001",
                "password": "sandbox",
                "extra": {"email": "sandbox@example.com", "sender_id": "UTOMOB"},
            }
        )
        hook = MessageCentralHook()
        start = time.perf_counter()
        single = hook.send_message("9816111111", "Hello from Airflow")
        bulk = hook.send_bulk([f"98161{i:05d}" for i in range(100)], "Sale today", chunk_size=25)
        took = time.perf_counter() - start
        stats = sandbox.stats()
        print(f"sandbox: {sandbox.url}")
        print(f"single send accepted: transactionId={single['transactionId']}")
        print(f"bulk send accepted: {len(bulk)} chunks, {sum(len(r['recipients']) for r in bulk)} recipients")
        print(f"sandbox texted {stats['messages']} recipients with {stats['token_requests']} token request(s)")
        print(f"took {took:.2f}s")


if __name__ == "__main__":
    main()
