"""Benchmark (run by hand, not a test): how fast does the quote ingestor's write path move
decoded stream quotes into Redis, how old is a quote when a reader gets it under that load, and
does a Redis restart lose any symbol's newest quote?

    .venv/bin/python bench/quote_ingest.py [--quotes 50000] [--symbols 1000 --symbols 50]
        [--raw-batch 500] [--rate 20000] [--outage-symbols 500] [--json]

Everything runs against a private ``redis-server`` on a free loopback port (started and killed
here; never the shared one). For each symbol count (by default: as many symbols as quotes, the
worst case where no quote can be coalesced with a newer one and the headline figures come
from; then a 1,000-symbol and a 50-symbol universe):

- baseline: a raw redis-py loop — build the quote, encode it, SET the key and PUBLISH it,
  pipelined ``--raw-batch`` quotes per round trip (the least any writer must do);
- ingestor: the same quotes handed to ``QuoteIngestor.offer`` by one producer thread (as the
  data stream's loop would) while the writer thread drains them to Redis; the clock stops
  when every quote is in Redis (nothing left in the buffer). Same process, same run: the
  ratio compares like with like.
- while the ingestor runs, a separate reader process GETs random symbols and records each
  quote's age (read time - the quote's timestamp, taken when the producer decoded it): once
  with the producer flooding (as fast as it can offer), once paced at ``--rate`` quotes/s
  (default 20,000: the goal's load). That age includes the wait for the symbol's next quote
  (1,000 symbols at 20,000/s: one quote per symbol every 50 ms), so the write lag is reported
  too: for every quote written, the time from its arrival to the end of its Redis write.

Then the outage: quotes flow, Redis is SIGKILLed, quotes keep coming (buffered), the stream
stops, Redis restarts empty, and every symbol's quote in Redis is compared with the newest one
the ingestor received. Exit status 0 only when no newest quote is lost and every offered quote
was accounted for; the speed goals (>= 20,000 quotes/s, ratio >= 0.5) are reported.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], pct: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class Redis:
    """A private redis-server: no persistence, so a kill loses everything."""

    def __init__(self, workdir: str) -> None:
        self.binary = shutil.which("redis-server")
        if not self.binary:
            sys.exit("redis-server is not installed")
        self.port, self.workdir = free_port(), workdir
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers (the caller kills it, also when this fails)."""
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = self.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def client(self) -> Any:
        from marketdata.quotes import redis_client

        return redis_client(self.url, timeout=5)


def make_report(symbol: str, n: int) -> Any:
    """A decoded stream quote stamped now (as the stream's loop would hand it over)."""
    from tradeops.broker_types import QuoteReport

    price = Decimal(100 + n % 1000) / 10
    return QuoteReport(symbol, price, price + Decimal("0.01"), 100, 200, datetime.now(UTC))


def symbols_for(count: int) -> list[str]:
    """``count`` distinct well-formed symbols (Q + 4 letters: up to 456,976)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return ["Q" + "".join(letters[i // 26**k % 26] for k in (3, 2, 1, 0)) for i in range(count)]


# --- baseline ---------------------------------------------------------------------------------
def raw_loop(url: str, symbols: list[str], quotes: int, batch: int) -> dict[str, Any]:
    from marketdata.quotes import redis_client
    from marketdata.quoting import Quote, encode_quote, quote_channel, quote_key

    client = redis_client(url, timeout=5)
    client.flushdb()
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for n in range(quotes):
        report = make_report(symbols[n % len(symbols)], n)
        quote = Quote(
            report.symbol,
            report.bid_price,
            report.ask_price,
            report.bid_size,
            report.ask_size,
            report.timestamp,
            datetime.now(UTC),
        )
        payload = encode_quote(quote)
        pipe.set(quote_key(quote.symbol), payload)
        pipe.publish(quote_channel(quote.symbol), payload)
        if (n + 1) % batch == 0:
            pipe.execute()
    pipe.execute()
    elapsed = time.perf_counter() - started
    return {"seconds": round(elapsed, 3), "quotes_per_second": round(quotes / elapsed)}


# --- the ingestor under load, with a reader process ------------------------------------------
def reader(url: str, symbols: list[str], stop: Any, out: Any) -> None:
    """Another process, like the web: GET random symbols, record each quote's age."""
    from marketdata.quotes import redis_client
    from marketdata.quoting import decode_quote, quote_key

    client = redis_client(url, timeout=5)
    rng = random.Random(7)
    ages: list[float] = []
    while not stop.is_set():
        raw = client.get(quote_key(rng.choice(symbols)))
        if raw:
            now = datetime.now(UTC)
            ages.append((now - decode_quote(raw).timestamp).total_seconds())
        time.sleep(0.0005)
    out.send(ages)


def ingest(url: str, symbols: list[str], quotes: int, rate: float = 0) -> dict[str, Any]:
    """``rate`` 0: as fast as the producer can offer (a flood); else paced at that many
    quotes per second (1 ms steps), the steady load a feed puts on the ingestor."""
    from marketdata.ingest import QuoteIngestor, RedisQuoteWriter
    from marketdata.quotes import redis_client
    from marketdata.quoting import decode_quote, quote_key

    lags: list[float] = []

    class TimedWriter(RedisQuoteWriter):
        """Records, for every quote written, how long it waited since it was received."""

        def write(self, batch: list[Any]) -> None:
            super().write(batch)
            done = datetime.now(UTC)
            lags.extend((done - q.received_at).total_seconds() for q in batch)

    redis_client(url, timeout=5).flushdb()
    ingestor = QuoteIngestor(writer=TimedWriter(url), buffer_size=100, retry_max_seconds=0.5)
    ingestor.set_symbols(symbols)
    ingestor.set_connected(True)
    ingestor.start()
    context = multiprocessing.get_context("fork")
    stop_reader = context.Event()
    receive, send = context.Pipe(duplex=False)
    reading = context.Process(target=reader, args=(url, symbols, stop_reader, send))
    reading.start()
    stop = threading.Event()
    writer = threading.Thread(target=ingestor.run_writer, args=(stop,))
    writer.start()
    started = time.perf_counter()
    step = max(int(rate / 1000), 1) if rate else quotes
    for first in range(0, quotes, step):
        for n in range(first, min(first + step, quotes)):
            ingestor.offer(make_report(symbols[n % len(symbols)], n))
        if rate:
            pause = started + (first + step) / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    offered = time.perf_counter() - started
    while ingestor.status().buffer_depth:
        time.sleep(0.0005)
    elapsed = time.perf_counter() - started
    stored = redis_client(url, timeout=5).mget([quote_key(s) for s in symbols])
    mismatches = sum(
        1
        for symbol, raw in zip(symbols, stored, strict=True)
        if raw is None or decode_quote(raw) != ingestor.latest(symbol)
    )
    stop_reader.set()
    ages = receive.recv()
    reading.join()
    stop.set()
    writer.join()
    status = ingestor.status()
    return {
        "seconds": round(elapsed, 3),
        "quotes_per_second": round(quotes / elapsed),
        "offer_seconds": round(offered, 3),
        "quotes_received": status.quotes_received,
        "redis_writes": status.quotes_written,
        "redis_not_newest": mismatches,
        "reads": len(ages),
        "age_p50_seconds": rounded(percentile(ages, 50)),
        "age_p99_seconds": rounded(percentile(ages, 99)),
        "age_max_seconds": rounded(max(ages, default=None)),
        "write_lag_p50_seconds": rounded(percentile(lags, 50)),
        "write_lag_p99_seconds": rounded(percentile(lags, 99)),
    }


# --- the outage ---------------------------------------------------------------------------------
def outage(redis: Redis, symbols: list[str], per_phase: int) -> dict[str, Any]:
    from marketdata.ingest import QuoteIngestor, RedisQuoteWriter
    from marketdata.quoting import quote_key

    redis.client().flushdb()
    ingestor = QuoteIngestor(
        writer=RedisQuoteWriter(redis.url, timeout=0.5), buffer_size=100, retry_max_seconds=0.2
    )
    ingestor.set_symbols(symbols)
    ingestor.set_connected(True)
    ingestor.start()
    stop = threading.Event()
    writer = threading.Thread(target=ingestor.run_writer, args=(stop,))
    writer.start()
    n = 0
    for _ in range(per_phase):  # before the outage
        ingestor.offer(make_report(symbols[n % len(symbols)], n))
        n += 1
    redis.kill()
    for _ in range(per_phase):  # during: only the buffer has them
        ingestor.offer(make_report(symbols[n % len(symbols)], n))
        n += 1
    while ingestor.status().state != "buffering":
        time.sleep(0.01)
    buffered = ingestor.status()
    restarted = time.perf_counter()
    redis.start()
    while ingestor.status().buffer_depth or ingestor.status().state != "streaming":
        time.sleep(0.005)
    recovered = time.perf_counter() - restarted
    stop.set()
    writer.join()
    client = redis.client()
    stored = client.mget([quote_key(s) for s in symbols])
    from marketdata.quoting import decode_quote

    lost = sum(
        1
        for symbol, raw in zip(symbols, stored, strict=True)
        if raw is None or decode_quote(raw) != ingestor.latest(symbol)
    )
    return {
        "symbols": len(symbols),
        "quotes_offered": n,
        "quotes_received": ingestor.status().quotes_received,
        "buffer_depth_during_outage": buffered.buffer_depth,
        "redis_errors": ingestor.status().redis_errors,
        "recovery_seconds": round(recovered, 3),
        "lost_newest_quotes": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quotes", type=int, default=50_000, help="quotes per run")
    parser.add_argument(
        "--symbols",
        type=int,
        action="append",
        help="symbol counts to run (default: as many as quotes, i.e. every quote a new symbol "
        "so nothing can be coalesced, then 1000 and 50); repeat the option",
    )
    parser.add_argument("--raw-batch", type=int, default=500, help="quotes per raw pipeline")
    parser.add_argument("--outage-symbols", type=int, default=500)
    parser.add_argument(
        "--rate", type=float, default=20_000, help="paced run: quotes per second (age at read)"
    )
    parser.add_argument("--json", action="store_true", help="also print one JSON line last")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")
    os.environ["TRADEOPS_VAR_DIR"] = tempfile.mkdtemp(prefix="quote-bench-")
    import django

    django.setup()
    workdir = tempfile.mkdtemp(prefix="quote-bench-redis-")
    redis = Redis(workdir)
    try:
        redis.start()
        runs = []
        for count in args.symbols or [args.quotes, 1000, 50]:
            symbols = symbols_for(count)
            raw = raw_loop(redis.url, symbols, args.quotes, args.raw_batch)
            ingested = ingest(redis.url, symbols, args.quotes)
            paced = ingest(redis.url, symbols, args.quotes, rate=args.rate)
            runs.append(
                {
                    "symbols": count,
                    "quotes": args.quotes,
                    "raw": raw,
                    "ingestor": ingested,
                    "paced": paced | {"rate": args.rate},
                    "ratio": round(ingested["quotes_per_second"] / raw["quotes_per_second"], 2),
                }
            )
        restart = outage(redis, symbols_for(args.outage_symbols), 20 * args.outage_symbols)
    finally:
        redis.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    headline = runs[0]  # the worst case for throughput: nothing to coalesce
    # Age at read only means something when symbols quote repeatedly (realistic universes).
    aged = next((r for r in runs if r["symbols"] < r["quotes"]), runs[0])
    accounted = all(
        r[kind]["quotes_received"] == r["quotes"] and r[kind]["redis_not_newest"] == 0
        for r in runs
        for kind in ("ingestor", "paced")
    )
    accounted = accounted and restart["quotes_received"] == restart["quotes_offered"]
    result = {
        "quotes_per_second": headline["ingestor"]["quotes_per_second"],
        "raw_quotes_per_second": headline["raw"]["quotes_per_second"],
        "ratio": headline["ratio"],
        "age_p99_seconds": aged["paced"]["age_p99_seconds"],
        "age_p99_symbols": aged["symbols"],
        "write_lag_p99_seconds": aged["paced"]["write_lag_p99_seconds"],
        "lost_newest_quotes": restart["lost_newest_quotes"],
        "runs": runs,
        "restart": restart,
        "goals_met": {
            "quotes_per_second>=20000": headline["ingestor"]["quotes_per_second"] >= 20_000,
            "ratio>=0.5": headline["ratio"] >= 0.5,
        },
        "cpus": os.cpu_count(),
        "ok": restart["lost_newest_quotes"] == 0 and accounted,
    }
    for run in runs:
        i, r, p = run["ingestor"], run["raw"], run["paced"]
        print(
            f"{run['symbols']:>5} symbols, {run['quotes']:,} quotes: ingestor "
            f"{i['quotes_per_second']:,}/s ({i['redis_writes']:,} Redis writes), raw loop "
            f"{r['quotes_per_second']:,}/s, ratio {run['ratio']}; age at read p50/p99 "
            f"{i['age_p50_seconds']}/{i['age_p99_seconds']}s flooded, "
            f"{p['age_p50_seconds']}/{p['age_p99_seconds']}s at {p['rate']:,.0f}/s "
            f"({p['reads']:,} reads); write lag p50/p99 {i['write_lag_p50_seconds']}/"
            f"{i['write_lag_p99_seconds']}s flooded, {p['write_lag_p50_seconds']}/"
            f"{p['write_lag_p99_seconds']}s paced"
        )
    print(
        f"Redis restart: {restart['symbols']} symbols, {restart['quotes_offered']:,} quotes, "
        f"{restart['buffer_depth_during_outage']:,} buffered, recovered in "
        f"{restart['recovery_seconds']}s, newest quotes lost: {restart['lost_newest_quotes']}"
    )
    if args.json:
        print(json.dumps(result, allow_nan=False, default=str))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
