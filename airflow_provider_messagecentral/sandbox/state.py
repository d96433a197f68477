"""Everything the sandbox remembers: account, tokens, request log, statistics and injected faults."""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import hmac
import itertools
import random
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from airflow_provider_messagecentral.sandbox.auth import TokenError, issue_token, verify_token
from airflow_provider_messagecentral.sandbox.callbacks import CallbackDispatcher
from airflow_provider_messagecentral.sandbox.config import (
    SandboxConfig,
    check_field_types,
    check_fraction,
    parse_status_mix,
)
from airflow_provider_messagecentral.sandbox.delivery import Outcome, decide
from airflow_provider_messagecentral.sandbox.faults import FAULT_KEYS, credits, parse_fault, seconds
from airflow_provider_messagecentral.sandbox.validation import Recipient, SendRejected

CONFIG_KEYS = (
    "callback_url",
    "callback_delay",
    "status_mix",
    "duplicates",
    "out_of_order",
    "seed",
    "field_types",
    "balance",
    "credit_per_segment",
)
_TOKEN_PARAMS = ("customerId", "key", "scope", "country", "email")


def _iso(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix)) + f".{int(unix % 1 * 1e6):06d}Z"


class SandboxState:
    """
    The sandbox's memory. Every method is thread-safe; tests may call them directly.

    :param config: the startup settings (kept by :meth:`reset`).
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.initial_config = dataclasses.replace(config) if config else SandboxConfig()
        self.config = dataclasses.replace(self.initial_config)
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(64)
        self._verification_ids = itertools.count(100001)
        self.dispatcher = CallbackDispatcher(
            self.config.callback_workers, self.config.callback_retries, self.config.callback_timeout
        )
        self._status_mix = parse_status_mix(self.config.status_mix)
        #: when the account was "created" (the balance answer's dates).
        self.started = _iso(time.time())
        self._clear()

    # -- bookkeeping -------------------------------------------------------------------------------
    def _clear(self) -> None:
        self._requests: list[dict[str, Any]] = []
        self._outcomes: list[Outcome] = []
        self._rejected: list[dict[str, Any]] = []
        self._stats = {"token_requests": 0, "send_requests": 0, "accepted_sends": 0, "messages": 0}
        self._faults: dict[str, Any] = {
            "latency": self.initial_config.latency,
            "token_ttl": self.initial_config.token_ttl,
            "rate_limit": None,
            "errors": None,
            "balance": self.config.balance,
            "balance_endpoint": None,
            "fail_on_send": None,
            "hang": None,
            "tokens_revoked": 0,
        }
        self._rng = random.Random(self.config.seed)

    def reset(self, restore_config: bool = False) -> None:
        """Clear the request log, statistics, faults and queued callbacks; keep issued tokens valid."""
        with self._lock:
            if restore_config:
                self.config = dataclasses.replace(self.initial_config)
                self._status_mix = parse_status_mix(self.config.status_mix)
            self._clear()
        self.dispatcher.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            stats = dict(self._stats)
            stats["rejected"] = len(self._rejected)
        stats.update(self.dispatcher.counts())
        return stats

    def requests(self) -> list[dict[str, Any]]:
        """Accepted sends, oldest first."""
        with self._lock:
            return list(self._requests)

    def outcomes(self) -> list[Outcome]:
        """The fate of every accepted message, oldest first (what the detailed reports list once due)."""
        with self._lock:
            return list(self._outcomes)

    def messages(self) -> list[dict[str, Any]]:
        """One entry per recipient of every accepted send, oldest first."""
        with self._lock:
            entries = list(self._requests)
        return [
            {
                "mobile": r["mobile"],
                "text": r["text"],
                "message_id": r["message_id"],
                "transaction_id": e["transaction_id"],
                "kind": e["kind"],
                "at": e["at"],
            }
            for e in entries
            for r in e["recipients"]
        ]

    def rejected(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rejected)

    def record_rejected(self, endpoint: str, err: SendRejected, params: Mapping[str, str]) -> None:
        entry = {
            "endpoint": endpoint,
            "status": err.http_status,
            "response_code": err.response_code,
            "reason": err.message,
            "params": {k: v for k, v in params.items() if k != "key"},
            "at": _iso(time.time()),
        }
        with self._lock:
            self._rejected.append(entry)

    # -- tokens --------------------------------------------------------------------------------------
    def issue_token(self, params: Mapping[str, str]) -> str:
        """Check the token call's parameters against the account; return a signed token."""
        with self._lock:
            self._stats["token_requests"] += 1
            ttl = self._faults["token_ttl"]
            secret = self._secret
        for name in _TOKEN_PARAMS:
            if not params.get(name):
                raise SendRejected(f"missing required parameter '{name}'")
        if params["scope"] != "NEW":
            raise SendRejected(f"parameter 'scope' must be 'NEW', got {params['scope'][:20]!r}")
        config = self.config
        expected_key = base64.b64encode(config.password.encode("utf-8")).decode("ascii")
        matches = [
            hmac.compare_digest(params["key"].encode(), expected_key.encode()),
            params["customerId"] == config.customer_id,
            params["email"].strip().lower() == config.email.lower(),
            params["country"].lstrip("+") == config.country,
        ]
        if not all(matches):
            raise SendRejected("UNAUTHORIZED", 401)
        return issue_token(secret, config.customer_id, ttl)

    def authenticate(self, token: str | None) -> str:
        """The customer id of a valid token; raise a 401 :class:`SendRejected` otherwise."""
        if not token:
            raise SendRejected("UNAUTHORIZED", 401)
        try:
            payload = verify_token(self._secret, token)
        except TokenError:
            raise SendRejected("UNAUTHORIZED", 401) from None
        return str(payload.get("sub"))

    # -- faults --------------------------------------------------------------------------------------
    def faults(self) -> dict[str, Any]:
        with self._lock:
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._faults.items()}

    def set_faults(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the current faults (see the module docs of ``app`` for the keys)."""
        unknown = [key for key in changes if key not in FAULT_KEYS]
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(FAULT_KEYS)}")
        parsed: dict[str, Any] = {}
        for key, value in changes.items():
            if value is None and key != "expire_tokens":
                parsed[key] = self._default_fault(key)
            else:
                parsed[key] = parse_fault(key, value)
        with self._lock:
            for key, value in parsed.items():
                if key == "expire_tokens":
                    if value:
                        self._secret = secrets.token_bytes(64)
                        self._faults["tokens_revoked"] += 1
                else:
                    self._faults[key] = value
        return self.faults()

    def _default_fault(self, key: str) -> Any:
        """What a fault set to ``None`` goes back to: the startup latency and token lifetime, the configured
        balance, else off."""
        if key in ("latency", "token_ttl"):
            return float(getattr(self.initial_config, key))
        return self.config.balance if key == "balance" else None

    def latency(self) -> float:
        return float(self._faults["latency"] or 0.0)

    def count_send(self) -> None:
        with self._lock:
            self._stats["send_requests"] += 1

    def take_transient_fault(self) -> SendRejected | None:
        """A 429 or 5xx this send must get (consuming one of the injected ones), else ``None``."""
        with self._lock:
            rate_limit = self._faults["rate_limit"]
            if rate_limit:
                rate_limit["count"] -= 1
                if rate_limit["count"] <= 0:
                    self._faults["rate_limit"] = None
                err = SendRejected("TOO_MANY_REQUESTS", 429)
                if rate_limit["retry_after"] == "http-date":
                    err.retry_after = email.utils.formatdate(time.time() + rate_limit["seconds"], usegmt=True)
                else:
                    err.retry_after = rate_limit["retry_after"]
                return err
            errors = self._faults["errors"]
            if errors:
                errors["count"] -= 1
                if errors["count"] <= 0:
                    self._faults["errors"] = None
                return SendRejected(
                    "SERVICE_UNAVAILABLE" if errors["status"] == 503 else "SERVER_ERROR", errors["status"]
                )
        return None

    def take_business_fault(self, segments: int) -> int | None:
        """
        The business error code this valid send must get (``fail_on_send``, else ``402`` when the balance does
        not cover ``segments`` x ``credit_per_segment``), else ``None`` after charging the balance.
        """
        with self._lock:
            fail = self._faults["fail_on_send"]
            if fail:
                fail["seen"] += 1
                if fail["seen"] >= fail["nth"]:
                    self._faults["fail_on_send"] = None
                    return int(fail["code"])
            cost = segments * self.config.credit_per_segment
            if cost > self._faults["balance"]:
                return 402
            self._faults["balance"] -= cost
        return None

    def balance(self) -> float:
        """The account's credit left."""
        with self._lock:
            return float(self._faults["balance"])

    def take_hang(self) -> float:
        """Seconds to hold the answer of this (accepted) send, consuming one injected hang."""
        with self._lock:
            hang = self._faults["hang"]
            if not hang:
                return 0.0
            hang["count"] -= 1
            if hang["count"] <= 0:
                self._faults["hang"] = None
            return float(hang["seconds"])

    # -- accepted sends ------------------------------------------------------------------------------
    def record_accepted(
        self,
        kind: str,
        params: Mapping[str, str],
        recipients: list[Recipient],
        file_info: dict[str, Any] | None = None,
        hung: bool = False,
    ) -> dict[str, Any]:
        """Log an accepted send, schedule its delivery reports and return the log entry."""
        now = time.time()
        transaction_id = str(uuid.uuid4())
        single = kind == "single"
        entry: dict[str, Any] = {
            "kind": kind,
            "transaction_id": transaction_id,
            "verification_id": "",
            "params": dict(params),
            "file": file_info,
            "at": _iso(now),
            "hung": hung,
            "recipients": [
                {
                    "mobile": r.mobile,
                    "text": r.text,
                    "message_id": transaction_id if single else str(uuid.uuid4()),
                }
                for r in recipients
            ],
        }
        with self._lock:
            entry["verification_id"] = str(next(self._verification_ids))
            self._requests.append(entry)
            self._stats["accepted_sends"] += 1
            self._stats["messages"] += len(recipients)
            url, config = self.config.callback_url, self.config
            statuses, jobs = decide(
                self._rng,
                self._status_mix,
                entry["recipients"],
                now,
                config.callback_delay,
                callbacks=bool(url),
                duplicates=config.duplicates,
                out_of_order=config.out_of_order,
            )
            delay = config.callback_delay
            self._outcomes.extend(
                Outcome(
                    r.country_code,
                    r.national,
                    r.text,
                    params.get("senderId"),
                    params.get("templateId"),
                    params.get("type", "SMS"),
                    status,
                    now,
                    now + delay,
                )
                for r, status in zip(recipients, statuses, strict=True)
            )
        if url and jobs:
            self.dispatcher.schedule(url, jobs, delay)
        return entry

    # -- runtime configuration -----------------------------------------------------------------------
    def configure(self, changes: Mapping[str, Any]) -> dict[str, object]:
        """Change callback settings of the running sandbox; return the public view of the settings."""
        unknown = [key for key in changes if key not in CONFIG_KEYS]
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(CONFIG_KEYS)}")
        values = dict(changes)
        if "callback_delay" in values:
            values["callback_delay"] = seconds("callback_delay", values["callback_delay"])
        for key in ("duplicates", "out_of_order"):
            if key in values:
                values[key] = check_fraction(key, values[key])
        if "field_types" in values:
            check_field_types(values["field_types"])
        for key in ("balance", "credit_per_segment"):
            if key in values:
                values[key] = credits(key, values[key])
        if values.get("callback_url") is not None and not str(values["callback_url"]).startswith(
            ("http://", "https://")
        ):
            raise ValueError("callback_url must be an http:// or https:// URL")
        mix = parse_status_mix(values["status_mix"]) if "status_mix" in values else None
        with self._lock:
            self.config = dataclasses.replace(self.config, **values)
            if mix is not None:
                self._status_mix = mix
            if "seed" in values:
                self._rng = random.Random(values["seed"])
            if "balance" in values:
                self._faults["balance"] = values["balance"]
            return self.config.public_view()

    def close(self) -> None:
        self.dispatcher.close()
