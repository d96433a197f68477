"""
Figure 2: bulk numbers. Client-side cost of ``send_bulk`` (normalisation, validation, de-duplication,
chunking, formatting) per 1,000 numbers at 1k, 10k, 100k and 1M recipients (growth must be linear), against a
hand-written ``phonenumbers.parse`` loop, and a whole 100k ``send_bulk`` (clean national numbers, and mixed
formats with 2% duplicates) against the minimal local server (requests counted there) against a raw
``requests.Session`` posting the same chunks unvalidated: the ratio is the raw client's time over ours, so
0.5 means half the raw client's throughput.
"""

from __future__ import annotations

import time

import requests

from benchmarks.bench_hook import CONN_ID, CUSTOMER_ID, MESSAGE, SEND_PATH, MiniApi, national_numbers, use_connection
from benchmarks.common import Figure, Stats, interleaved, log

CHUNK_SIZE = 500


def mixed_formats(numbers: list[str], duplicate_every: int = 50) -> list[str]:
    """The shapes users pass: national, +91 with spaces, 91 without +, 0-prefixed; 2% repeated numbers."""
    out: list[str] = []
    for i, n in enumerate(numbers):
        shape = i % 4
        if shape == 0:
            out.append(n)
        elif shape == 1:
            out.append(f"+91 {n[:5]} {n[5:]}")
        elif shape == 2:
            out.append(f"91{n}")
        else:
            out.append(f"0{n}")
        if duplicate_every and i % duplicate_every == duplicate_every - 1:
            out.append(n)
    return out


def client_work(hook: object, raw: list[str]) -> int:
    """What ``send_bulk`` does before its first request: normalise, chunk, format. Returns chunk count."""
    from airflow_provider_messagecentral.audience.phone import chunked, format_phone_numbers

    numbers = hook.normalize(raw, "91")  # type: ignore[attr-defined]
    chunks = 0
    for chunk in chunked(numbers, CHUNK_SIZE):
        format_phone_numbers(chunk)
        chunks += 1
    return chunks


def hand_written(raw: list[str]) -> int:
    """What a user would write by hand: parse + is_valid + E.164 format with libphonenumber, de-duplicate."""
    import phonenumbers

    seen: set[str] = set()
    for text in raw:
        parsed = phonenumbers.parse(text, "IN")
        if not phonenumbers.is_valid_number(parsed):
            raise ValueError(text)
        seen.add(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return len(seen)


def per_thousand(fn: object, raw: list[str], total: int) -> float:
    """Seconds per 1,000 input numbers, processing ``raw`` repeatedly until ``total`` numbers were seen."""
    rounds = max(1, total // len(raw))
    start = time.perf_counter()
    for _ in range(rounds):
        fn(raw)  # type: ignore[operator]
    return (time.perf_counter() - start) / (rounds * len(raw)) * 1000


def growth_figure(name: str, size: int, per_size: dict[int, list[float]], sizes: list[int]) -> Figure:
    """Client time per 1,000 numbers at ``size`` against at 1,000 (1.0 = linear growth)."""
    growth = Stats.of([big / small for big, small in zip(per_size[size], per_size[1_000], strict=True)])
    return Figure(
        figure="2",
        name=name,
        title=f"bulk client time per 1,000 numbers at {size:,}",
        unit="s",
        value=Stats.of(per_size[size]),
        baseline=Stats.of(per_size[1_000]),
        baseline_name="same at 1,000",
        ratio=growth,
        ratio_meaning=f"per-1k client time at {size:,} / at 1,000 numbers (1.0 = linear)",
        goal="linear: <= 1.20",
        goal_met=growth.median <= 1.20,
        parameters={"sizes": sizes, "chunk_size": CHUNK_SIZE, "shapes": "national, +91 spaced, 91.., 0.."},
        details={f"per_1k_s_at_{s}": Stats.of(v).median for s, v in per_size.items()},
    )


def raw_bulk(url: str, token: str, chunks: list[str]) -> float:
    """A raw ``requests.Session`` posting pre-formatted chunks (no validation). Returns seconds."""
    with requests.Session() as session:
        start = time.perf_counter()
        for phone_numbers in chunks:
            params = {
                "flowType": "SMS",
                "type": "SMS",
                "messageType": "PROMOTIONAL",
                "message": MESSAGE,
                "senderId": "UTOMOB",
                "customerId": CUSTOMER_ID,
                "countryCode": "91",
                "phoneNumbers": phone_numbers,
            }
            resp = session.post(url + SEND_PATH, params=params, headers={"authToken": token}, timeout=30)
            resp.raise_for_status()
            resp.json()
        return time.perf_counter() - start


def send_figure(api: MiniApi, hook: object, raw: list[str], label: str, repeats: int) -> Figure:
    """A whole campaign through ``send_bulk`` against a raw client posting the same chunks (server counts)."""
    from airflow_provider_messagecentral.audience.phone import chunked, format_phone_numbers

    expected_chunks = client_work(hook, raw)
    token = hook.get_token()  # type: ignore[attr-defined]
    prepared = [format_phone_numbers(c) for c in chunked(hook.normalize(raw, "91"), CHUNK_SIZE)]  # type: ignore[attr-defined]
    api.reset()
    seen: list[dict[str, int]] = []

    def ours_bulk() -> float:
        before = api.stats()
        start = time.perf_counter()
        results = hook.send_bulk(raw, MESSAGE, chunk_size=CHUNK_SIZE)  # type: ignore[attr-defined]
        took = time.perf_counter() - start
        after = api.stats()
        seen.append(
            {
                "requests": after["send_requests"] - before["send_requests"],
                "tokens": after["token_requests"] - before["token_requests"],
                "recipients": after["recipients"] - before["recipients"],
                "results": len(results),
            }
        )
        return took

    log(f"figure 2: send_bulk of {len(raw):,} inputs ({label}) vs raw requests posting the same chunks")
    ours_t, raw_t, _ = interleaved(ours_bulk, lambda: raw_bulk(api.url, token, prepared), repeats)
    requests_ok = all(s["requests"] == expected_chunks and s["tokens"] == 0 for s in seen)
    throughput = Stats.of([r / o for r, o in zip(raw_t, ours_t, strict=True)])
    unique = sum(p.count(",") + 1 for p in prepared)
    return Figure(
        figure="2",
        name=f"bulk_send_{label.split()[0]}",
        title=f"send_bulk of {unique:,} recipients ({label}), {expected_chunks} requests",
        unit="s",
        value=Stats.of(ours_t),
        baseline=Stats.of(raw_t),
        baseline_name="raw requests, pre-formatted chunks",
        ratio=throughput,
        ratio_meaning="raw Session's time posting the same chunks without validation / send_bulk's time",
        goal=f">= 0.5; {expected_chunks} requests, 0 tokens",
        goal_met=throughput.median >= 0.5 and requests_ok,
        parameters={"inputs": len(raw), "unique": unique, "chunk_size": CHUNK_SIZE},
        details={"server_counts_per_repeat": seen},
    )


def run(quick: bool, repeats: int) -> list[Figure]:
    from airflow_provider_messagecentral.hooks.messagecentral import MessageCentralHook

    largest = 5_000 if quick else 1_000_000
    sizes = [1_000, largest] if quick else [1_000, 10_000, 100_000, 1_000_000]
    campaign = 5_000 if quick else 100_000
    base = national_numbers(largest)
    inputs = {size: mixed_formats(base[:size]) for size in sizes}
    figures: list[Figure] = []
    with MiniApi() as api:
        use_connection(api.url)
        hook = MessageCentralHook(CONN_ID)
        hook.settings  # noqa: B018 - connection lookup is setup
        client_work(hook, inputs[1_000])  # warm-up

        log(f"figure 2: client work per 1,000 numbers at {sizes}")
        per_size: dict[int, list[float]] = {size: [] for size in sizes}
        each = min(largest, 100_000)  # numbers processed per size and repeat (at least one pass of the size)
        for _ in range(repeats):
            for size in sizes:
                per_size[size].append(per_thousand(lambda r: client_work(hook, r), inputs[size], each))
        if not quick:
            figures.append(growth_figure("bulk_linear", 100_000, per_size, sizes))
        figures.append(growth_figure("bulk_linear_1m" if not quick else "bulk_linear", largest, per_size, sizes))

        sample = inputs[min(10_000, largest)]
        log(f"figure 2: normalisation vs hand-written phonenumbers loop ({len(sample):,} numbers)")
        ours, theirs, ratios = interleaved(
            lambda: per_thousand(lambda r: client_work(hook, r), sample, len(sample)),
            lambda: per_thousand(hand_written, sample, len(sample)),
            repeats,
        )
        ratio = Stats.of(ratios)
        figures.append(
            Figure(
                figure="2",
                name="bulk_vs_phonenumbers",
                title=f"bulk client time per 1,000 numbers ({len(sample):,})",
                unit="s",
                value=Stats.of(ours),
                baseline=Stats.of(theirs),
                baseline_name="phonenumbers.parse loop",
                ratio=ratio,
                ratio_meaning="our normalise+chunk+format time / hand-written parse+is_valid+format loop",
                goal="< 1 (faster)",
                goal_met=ratio.median < 1,
                parameters={"numbers": len(sample)},
            )
        )
        figures.append(send_figure(api, hook, base[:campaign], "national", repeats))
        figures.append(send_figure(api, hook, inputs[campaign], "mixed formats, +2% dups", repeats))
        hook.close()
    return figures
