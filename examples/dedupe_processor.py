"""A custom stateful processor: drop repeated events, remembering ids for ten minutes.

    python scripts/kafka start
    python examples/dedupe_processor.py worker

"payments" carries JSON events {"id": "p-17", ...}, possibly delivered twice by an
upstream retry.  Dedupe keeps each id it has seen, with the time it was seen, in
its own store "seen-ids" (RocksDB, changelogged, restored on takeover), forwards
only first sightings, and on each punctuation forgets ids older than the horizon.
"""

from __future__ import annotations

import struct

from streams import App, Processor, Record

HORIZON_MS = 10 * 60 * 1000
_TIME = struct.Struct(">q")

app = App("payments-dedupe")


class Dedupe(Processor):
    """Forward the first record of each event id; later copies within the horizon are dropped."""

    def __init__(self) -> None:
        super().__init__("dedupe")

    def init(self, context) -> None:
        super().init(context)
        self.seen = context.get_store("seen-ids")

    def process(self, batch: list[Record]) -> None:
        fresh = []
        for record in batch:
            event_id = str(record.value["id"]).encode()
            if self.seen.get(event_id) is None:
                self.seen.put(event_id, _TIME.pack(record.timestamp))
                fresh.append(record)
        self.forward(fresh)

    def punctuate(self, wall_clock_ms: int) -> None:
        expired = [key for key, seen_at in self.seen.items() if _TIME.unpack(seen_at)[0] < wall_clock_ms - HORIZON_MS]
        for key in expired:
            self.seen.delete(key)


payments = app.topic("payments", partitions=4)
unique_payments = app.topic("payments-unique", partitions=4)

app.stream(payments).process(Dedupe, stores=["seen-ids"], store_key_serde="bytes",
                             store_value_serde="bytes").to(unique_payments)

if __name__ == "__main__":
    app.main()
