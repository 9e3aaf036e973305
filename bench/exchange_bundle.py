"""Offline exchange bundle of 100,000 vouchers: export and import with Vigil (SM2/SM3/SM4
and the international suite), side by side with what a site would script by hand with the
openssl command line (SM3 digest, SM4-CBC encryption, SM2 signature of the digest file).

    .venv/bin/python -m bench.exchange_bundle [--vouchers 100000]

Target (issue 7): export and import each under 5 s. Checked against the truth: every
voucher imported, the manifest's count and total equal to the vouchers', and the openssl
pipeline's rows; exit 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from bench.truth import Truth, add_arguments
from vigil.remediations.vouchers.bundle import Keys, voucher_line
from vigil.remediations.vouchers.offline import export, import_bundle
from vigil.remediations.vouchers.suites import SUITES
from vigil.remediations.vouchers.voucher import Voucher
from vigil.store import Store

NOW = dt.datetime.now(dt.UTC)


def vouchers(n: int) -> list[Voucher]:
    day = dt.date(2026, 11, 27)
    return [Voucher(f"V{i:08d}", "payment", day, Decimal(i % 100000) + Decimal("0.37"),
                    "622200010001", f"6222{i:08d}", signed=True, sent=True) for i in range(n)]


def by_hand(folder: Path, keys: Path, payload: bytes, truth: Truth) -> tuple[float, float]:
    """The openssl pipeline a site might script: digest, encrypt, sign; then the reverse."""
    key, iv = os.urandom(16).hex(), os.urandom(16).hex()
    plain, enc = folder / "vouchers.jsonl", folder / "vouchers.enc"
    t0 = time.perf_counter()
    plain.write_bytes(payload)
    subprocess.run(["openssl", "dgst", "-sm3", "-out", str(folder / "digest"), str(plain)],
                   check=True)
    subprocess.run(["openssl", "enc", "-sm4-cbc", "-K", key, "-iv", iv, "-in", str(plain),
                    "-out", str(enc)], check=True)
    subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", str(keys / "finance.sign.key.pem"),
                    "-rawin", "-digest", "sm3", "-in", str(folder / "digest"),
                    "-out", str(folder / "digest.sig")], check=True)
    t1 = time.perf_counter()
    subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                    str(keys / "finance.sign.pub.pem"), "-rawin", "-digest", "sm3",
                    "-in", str(folder / "digest"), "-sigfile", str(folder / "digest.sig")],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "enc", "-d", "-sm4-cbc", "-K", key, "-iv", iv, "-in", str(enc),
                    "-out", str(folder / "back.jsonl")], check=True)
    rows = [json.loads(line) for line in (folder / "back.jsonl").read_text().splitlines()]
    truth.expect("openssl: rows back", len(payload.splitlines()), len(rows))
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vouchers", type=int, default=100_000)
    add_arguments(parser)
    args = parser.parse_args()
    truth = Truth("exchange_bundle", args.inject_mismatch)
    data = vouchers(args.vouchers)
    total = sum((v.amount for v in data), Decimal(0))
    payload = "".join(json.dumps(voucher_line(v), separators=(",", ":")) + "\n"
                      for v in data).encode()
    print(f"{args.vouchers:,} vouchers, {len(payload) / 1e6:.1f} MB of JSON lines")
    print("| run | export s | import s |")
    print("|---|---|---|")
    results = {}
    for name in ("sm", "intl"):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            keys = Keys(folder / "keys")
            keys.folder.mkdir()
            for party in ("finance", "pboc"):
                SUITES[name].keygen(keys.folder, party)
            t0 = time.perf_counter()
            path, manifest = export(data, sender="finance", recipient="pboc", keys=keys,
                             suite=SUITES[name], out_dir=folder / "disc",
                             ttl=dt.timedelta(hours=1), now=NOW)
            t1 = time.perf_counter()
            result = import_bundle(path, me="pboc", keys=keys, receipt=True,
                                   inbox=folder / "inbox", store=Store(str(folder / "s.db")),
                                   now=NOW)
            t2 = time.perf_counter()
            truth.expect(f"{name}: vouchers imported", args.vouchers, len(result.imported))
            truth.expect(f"{name}: manifest count", args.vouchers, manifest["count"])
            truth.expect(f"{name}: manifest total", str(total), manifest["total_amount"])
            truth.expect(f"{name}: the receipt written", True, bool(result.receipt))
            results[name] = (t1 - t0, t2 - t1)
            print(f"| Vigil, {name} suite (verify everything, import, receipt) | "
                  f"{t1 - t0:.2f} | {t2 - t1:.2f} |")
            if name == "sm":
                hand = by_hand(folder, keys.folder, payload, truth)
                results["openssl"] = hand
                print(f"| openssl by hand (digest, SM4-CBC, SM2 sign; no import) | "
                      f"{hand[0]:.2f} | {hand[1]:.2f} |")
    sm, hand = results["sm"], results["openssl"]
    print(f"ratio Vigil sm / openssl by hand: export {sm[0] / hand[0]:.1f}x, "
          f"import {sm[1] / hand[1]:.1f}x")
    truth.done()


if __name__ == "__main__":
    main()
