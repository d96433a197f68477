"""
Figure 1: hook overhead. ``MessageCentralHook.send_message`` against a raw ``requests.Session`` with a
pre-fetched token posting the same request, both against the same minimal local server (keep-alive).
Also counts token requests on the server: the hook's (one for the whole run) and a naive client's (one
per message).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from types import TracebackType

import requests

from benchmarks.common import (
    ROOT,
    Figure,
    Stats,
    bench_env,
    free_port,
    interleaved,
    log,
    stop_process,
    wait_port,
)

CUSTOMER_ID = "C-BENCH0000000001"
CONN_ID = "messagecentral_bench"
MESSAGE = "Your order 4711 has shipped and arrives tomorrow. Track it in the app."
TOKEN_PATH = "/auth/v1/authentication/token"
SEND_PATH = "/verification/v3/send"


class MiniApi:
    """``benchmarks/mini_api.py`` in its own process on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()

    def __enter__(self) -> MiniApi:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "mini_api.py"), str(self.port)], env=bench_env()
        )
        wait_port(self.port, proc=self.proc)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.session.close()
        if self.proc is not None:
            stop_process(self.proc)

    def stats(self) -> dict[str, int]:
        return dict(self.session.get(f"{self.url}/__stats", timeout=10).json())

    def reset(self) -> None:
        self.session.post(f"{self.url}/__reset", timeout=10).raise_for_status()


def use_connection(url: str) -> None:
    """Point the ``messagecentral_bench`` connection at ``url`` (environment variable, as users do)."""
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": "messagecentral",
            "host": url,
            "login": CUSTOMER_ID,
            "password": "bench-password",
            "extra": {"email": "bench@example.com", "sender_id": "UTOMOB", "country": "91"},
        }
    )


def national_numbers(count: int, seed_prefix: str = "98") -> list[str]:
    """``count`` distinct valid Indian mobile numbers (national form), deterministic."""
    from airflow_provider_messagecentral.audience.phone import parse_number

    out: list[str] = []
    i = 0
    prefixes = ["98", "97", "96", "95", "94", "93", "91", "90", "89", "88", "87", "86", "85", "84", "83", "82"]
    prefixes = [seed_prefix, *[p for p in prefixes if p != seed_prefix]]
    while len(out) < count:
        prefix = prefixes[i // 100_000_000 % len(prefixes)]
        candidate = f"{prefix}{(i * 7919) % 100_000_000:08d}"
        i += 1
        try:
            parse_number(candidate, "91")
        except ValueError:
            continue
        out.append(candidate)
    return out


def _raw_params(number: str) -> dict[str, str]:
    return {
        "flowType": "SMS",
        "type": "SMS",
        "messageType": "PROMOTIONAL",
        "message": MESSAGE,
        "senderId": "UTOMOB",
        "customerId": CUSTOMER_ID,
        "countryCode": "91",
        "mobileNumber": number,
    }


def _token_params() -> dict[str, str]:
    import base64

    return {
        "customerId": CUSTOMER_ID,
        "key": base64.b64encode(b"bench-password").decode(),
        "scope": "NEW",
        "country": "91",
        "email": "bench@example.com",
    }


def raw_client(url: str, numbers: list[str]) -> float:
    """A hand-written client: one ``requests.Session``, token fetched once beforehand. Returns msg/s."""
    with requests.Session() as session:
        session.headers.update({"accept": "*/*"})
        token = session.get(url + TOKEN_PATH, params=_token_params(), timeout=10).json()["token"]
        headers = {"authToken": token}
        send_url = url + SEND_PATH
        start = time.perf_counter()
        for number in numbers:
            resp = session.post(send_url, params=_raw_params(number), headers=headers, timeout=(10, 30))
            resp.raise_for_status()
            if resp.json()["responseCode"] != 200:
                raise RuntimeError("send refused")
        return len(numbers) / (time.perf_counter() - start)


def naive_client(url: str, numbers: list[str]) -> float:
    """The anti-pattern the hook avoids: a token request before every message. Returns msg/s."""
    with requests.Session() as session:
        start = time.perf_counter()
        for number in numbers:
            token = session.get(url + TOKEN_PATH, params=_token_params(), timeout=10).json()["token"]
            resp = session.post(url + SEND_PATH, params=_raw_params(number), headers={"authToken": token}, timeout=30)
            resp.raise_for_status()
        return len(numbers) / (time.perf_counter() - start)


def hook_client(numbers: list[str]) -> tuple[float, int]:
    """A fresh ``MessageCentralHook`` sending one message per number. Returns (msg/s, hook.token_requests)."""
    from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

    hook = MessageCentralHook(CONN_ID)
    hook.settings  # noqa: B018 - connection lookup is setup, not per-message cost
    try:
        start = time.perf_counter()
        for number in numbers:
            hook.send_message(number, MESSAGE)
        elapsed = time.perf_counter() - start
    finally:
        hook.close()
    return len(numbers) / elapsed, hook.token_requests


def profile_hook(numbers: list[str], top: int = 25) -> str:
    """cProfile of the hook sending ``numbers`` (cumulative time, top entries) as text."""
    import cProfile
    import io
    import pstats

    from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

    hook = MessageCentralHook(CONN_ID)
    hook.send_message(numbers[0], MESSAGE)
    profiler = cProfile.Profile()
    profiler.enable()
    for number in numbers:
        hook.send_message(number, MESSAGE)
    profiler.disable()
    hook.close()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def run(quick: bool, repeats: int) -> list[Figure]:
    from airflow_provider_messagecentral.client.tokens import TOKEN_CACHE

    sends = 200 if quick else 5_000
    numbers = national_numbers(sends)
    with MiniApi() as api:
        use_connection(api.url)
        # Warm both paths (imports, connection lookup, TCP) so that repeat 1 is not special.
        raw_client(api.url, numbers[:50])
        TOKEN_CACHE.clear()
        api.reset()
        token_counts: list[int] = []

        def ours() -> float:
            rate, count = hook_client(numbers)
            token_counts.append(count)
            return rate

        def baseline() -> float:
            return raw_client(api.url, numbers)

        log(f"figure 1: {repeats} x {sends} sends, hook vs raw requests.Session")
        mine, base, ratios = interleaved(ours, baseline, repeats)
        stats = api.stats()
        hook_tokens = stats["token_requests"] - repeats  # each raw run fetched its one token up front
        hook_sends = stats["send_requests"] - repeats * sends
        api.reset()
        naive_n = 200 if quick else sends
        log(f"figure 1: naive client, {naive_n} sends with a token each")
        naive_rate = naive_client(api.url, numbers[:naive_n])
        naive_tokens = api.stats()["token_requests"]
        profile = None
        if statistics.median(ratios) < 0.97:
            profile = profile_hook(numbers[: min(len(numbers), 2000)])

    ratio = Stats.of(ratios)
    fig_a = Figure(
        figure="1",
        name="hook_overhead",
        title=f"hook send_message throughput ({sends:,} sends)",
        unit="msg/s",
        value=Stats.of(mine),
        baseline=Stats.of(base),
        baseline_name="raw requests.Session",
        ratio=ratio,
        ratio_meaning="hook throughput / raw requests.Session throughput (same server, keep-alive)",
        goal=">= 0.97",
        goal_met=ratio.median >= 0.97,
        parameters={"sends": sends, "repeats": repeats, "server": "benchmarks/mini_api.py (asyncio, own process)"},
        details={"hook_send_requests_seen_by_server": hook_sends, "profile_top_tottime": profile},
    )
    fig_b = Figure(
        figure="1",
        name="token_requests",
        title=f"token requests for {repeats} x {sends:,} hook sends",
        unit="tokens",
        value=Stats.of([hook_tokens]),
        baseline=Stats.of([naive_tokens]),
        baseline_name=f"naive: token per message, {naive_n:,} sends",
        ratio=Stats.of([hook_tokens / naive_tokens]),
        ratio_meaning="token requests of the hook's whole run / token requests of a naive client",
        goal="hook: exactly 1",
        goal_met=hook_tokens == 1,
        parameters={"hook_sends": repeats * sends, "naive_sends": naive_n},
        details={
            "hook_token_requests_counted_by_hooks": token_counts,
            "naive_throughput_msg_per_s": round(naive_rate, 1),
        },
    )
    return [fig_a, fig_b]


if __name__ == "__main__":  # profiling aid: python -m benchmarks.bench_hook
    with MiniApi() as _api:
        use_connection(_api.url)
        print(profile_hook(national_numbers(2000)))
