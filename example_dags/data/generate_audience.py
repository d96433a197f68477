"""
Write ``audience.csv`` next to this file: 1,000 made-up customers with valid Indian mobile numbers.

Deterministic (fixed seed), so re-running it gives the same file byte for byte:
``python example_dags/data/generate_audience.py``. Columns: ``mobile`` (10-digit national number),
``var1`` (first name) and ``var2`` (cashback in rupees), read by the ``##var1##`` / ``##var2##``
placeholders of the ``messagecentral_campaign`` example.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

import phonenumbers

ROWS = 1_000
SEED = 20240101
FIRST_NAMES = [
    "Aarav",
    "Aditi",
    "Amit",
    "Ananya",
    "Anil",
    "Anjali",
    "Arjun",
    "Asha",
    "Deepak",
    "Divya",
    "Gaurav",
    "Isha",
    "Karan",
    "Kavya",
    "Lakshmi",
    "Manish",
    "Meera",
    "Neha",
    "Nikhil",
    "Pooja",
    "Priya",
    "Rahul",
    "Rajesh",
    "Ravi",
    "Rohan",
    "Sanjay",
    "Sapna",
    "Shreya",
    "Sneha",
    "Suresh",
    "Tanvi",
    "Varun",
    "Vikram",
    "Yash",
]
# Mobile number series (first four digits) in use in India; libphonenumber checks every number below.
SERIES = ("9810", "9816", "9871", "9899", "9930", "9845", "9884", "9445", "8800", "8826", "7715", "7042", "6290")


def audience(rows: int = ROWS, seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    while len(out) < rows:
        mobile = rng.choice(SERIES) + f"{rng.randrange(1_000_000):06d}"
        if mobile in seen or not phonenumbers.is_valid_number(phonenumbers.parse(mobile, "IN")):
            continue
        seen.add(mobile)
        out.append({"mobile": mobile, "var1": rng.choice(FIRST_NAMES), "var2": str(rng.randrange(50, 2001, 50))})
    return out


def main() -> int:
    target = Path(__file__).with_name("audience.csv")
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["mobile", "var1", "var2"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(audience())
    print(f"wrote {ROWS} rows to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
