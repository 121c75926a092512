"""Quote metrics, defined once at module level (prometheus_client refuses a second definition).

The ingestor's counters live in the ``stream_quotes`` process: its fallback endpoint serves
them on ``/metrics`` (scrape it), and with PROMETHEUS_MULTIPROC_DIR shared they also reach the
web's ``/metrics``. Read-side metrics (age at read, fallbacks) live where quotes are read.
The ingestor's state as the database knows it is a scrape-time gauge (marketdata.health).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- ingestor (stream_quotes) ------------------------------------------------------------------
QUOTES_RECEIVED = Counter("quotes_received", "Quotes received from the data stream")
QUOTES_WRITTEN = Counter(
    "quotes_written", "Quotes written to Redis (the newest per symbol of each batch)"
)
QUOTES_BUFFERED = Counter(
    "quotes_buffered", "Quotes received while Redis was failing (held in the ring buffer)"
)
QUOTES_SKIPPED = Counter(
    "quotes_skipped",
    "Stream messages not used, by reason (malformed, bad_symbol, out_of_order)",
    ["reason"],
)
for _reason in ("malformed", "bad_symbol", "out_of_order"):
    QUOTES_SKIPPED.labels(_reason)
QUOTE_REDIS_WRITE_ERRORS = Counter(
    "quote_redis_write_errors", "Failed Redis batch writes of the quote ingestor"
)
QUOTE_REDIS_BATCH = Histogram(
    "quote_redis_batch_size",
    "Quotes per pipelined Redis write",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
QUOTE_BUFFER_DEPTH = Gauge(
    "quote_buffer_depth",
    "Received quotes not yet in Redis (at most QUOTE_BUFFER_SIZE per symbol)",
    multiprocess_mode="livesum",
)
QUOTE_STREAM_CONNECTS = Counter("quote_stream_connects", "Data stream (re)connections")

# --- readers (QuoteClient) ----------------------------------------------------------------------
QUOTE_READS = Counter(
    "quote_reads", "Quote reads, by the hop that answered (or stale / unavailable)", ["source"]
)
# Created at 0 when the module loads, so that increase() sees the first stale read (an alert).
for _source in ("redis", "buffer", "broker", "stale", "unavailable"):
    QUOTE_READS.labels(_source)
QUOTE_FALLBACK_READS = Counter(
    "quote_fallback_reads",
    "Quote reads that Redis could not answer, by the hop that did (buffer, broker)",
    ["source"],
)
QUOTE_AGE_AT_READ = Histogram(
    "quote_age_at_read_seconds",
    "Age of the quote a read returned, by source",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 600),
)
QUOTE_HOP_ERRORS = Counter(
    "quote_hop_errors", "Quote hops that failed (timeout, connection, bad data)", ["hop"]
)
for _hop in ("redis", "buffer", "broker"):
    QUOTE_HOP_ERRORS.labels(_hop)
