"""Paper broker: a stateful imitation of Alpaca's Trading and Market Data APIs on loopback,
used unchanged by the real alpaca-py clients (see docs/paperbroker.md)."""
