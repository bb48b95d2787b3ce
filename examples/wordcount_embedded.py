"""Word count on the embedded broker: no Kafka, nothing to install beyond streams itself.

It starts a worker in this process, sends a few lines of text, waits until
every word is counted, prints the counts as published on the output topic
(checking them against the state store), and exits.

    python examples/wordcount_embedded.py                                     # in memory
    STREAMS_BROKERS=local://.wordcount python examples/wordcount_embedded.py  # durable, under ./.wordcount
    STREAMS_BROKERS=127.0.0.1:9092 python examples/wordcount_embedded.py      # the same app on Kafka
"""

from __future__ import annotations

import asyncio
import collections
import tempfile
import uuid

from streams import App

RUN = uuid.uuid4().hex[:8]
TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "the dog sleeps",
    "a fox is quick and a dog is lazy",
    "streams counts the words of the lines",
]

app = App(f"wordcount-{RUN}", brokers="memory://wordcount", commit_interval=0.2,
          state_dir=tempfile.mkdtemp(prefix="streams-wordcount-"))

lines = app.topic(f"wordcount-lines-{RUN}", partitions=2, value_serde="str")
counts_topic = app.topic(f"wordcount-counts-{RUN}", partitions=2)

words = app.stream(lines).flat_map_values(lambda line: line.lower().split())
counts = words.group_by(lambda _key, word: word, value_serde="str").count(name="word-counts")
counts.to_stream().to(counts_topic)


async def main() -> None:
    expected = collections.Counter(word for line in TEXT for word in line.lower().split())
    published: dict[str, int] = {}

    async def every_word_published() -> bool:
        published.update((r.key, r.value) for r in await run.read(counts_topic))  # the latest count wins
        return published == expected

    async with app.running() as run:
        for n, line in enumerate(TEXT):
            await run.send(lines, f"line-{n}", line)
        await run.until(every_word_published, timeout=60)
        assert dict(app.store("word-counts").items()) == published, "the output topic disagrees with the store"

    print(f"counted {sum(expected.values())} words of {len(TEXT)} lines on {app.config.brokers}:")
    for word, count in sorted(published.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {word:>7}: {count}")


if __name__ == "__main__":
    asyncio.run(main())
