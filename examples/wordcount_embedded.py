"""Word count on the embedded broker: no Kafka, nothing to install beyond streams itself.

It creates its topics, produces a few lines of text, runs a worker in this
process until every word is counted, prints the counts from the state store
and from the output topic, and exits.

    python examples/wordcount_embedded.py                                   # in memory
    STREAMS_BROKERS=local://.wordcount python examples/wordcount_embedded.py  # durable, under ./.wordcount
    STREAMS_BROKERS=127.0.0.1:9092 python examples/wordcount_embedded.py      # the same app on Kafka
"""

from __future__ import annotations

import asyncio
import collections
import tempfile
import uuid

from streams import App
from streams.partitioner import partition_for
from streams.transport import OutRecord, TopicPartition, TopicSpec

RUN = uuid.uuid4().hex[:8]
LINES, COUNTS = f"wordcount-lines-{RUN}", f"wordcount-counts-{RUN}"
PARTITIONS = 2
TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "the dog sleeps",
    "a fox is quick and a dog is lazy",
    "streams counts the words of the lines",
]

app = App(f"wordcount-{RUN}", brokers="memory://wordcount", commit_interval=0.2,
          state_dir=tempfile.mkdtemp(prefix="streams-wordcount-"))

lines = app.stream(LINES, value_serde="str")
words = lines.flat_map_values(lambda line: line.lower().split())
counts = words.group_by(lambda _key, word: word, value_serde="str").count(name="word-counts")
counts.to_stream().to(COUNTS)


async def main() -> None:
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(LINES, PARTITIONS), TopicSpec(COUNTS, PARTITIONS)])
    producer = transport.producer()
    await producer.start()
    keys = [f"line-{n}".encode() for n in range(len(TEXT))]
    await producer.send_many(OutRecord(LINES, partition_for(key, PARTITIONS), key, line.encode(), None, ())
                             for key, line in zip(keys, TEXT, strict=True))
    await producer.flush()
    await producer.stop()
    expected = collections.Counter(word for line in TEXT for word in line.lower().split())

    worker = app.create_worker(transport)
    runner = asyncio.create_task(worker.run())
    await worker.wait_started()
    while not runner.done() and dict(app.store("word-counts").items()) != expected:
        await asyncio.sleep(0.1)
    worker.stop()
    await runner  # raises what stopped the worker, if anything did

    published = await latest_counts(transport, COUNTS)
    print(f"counted {sum(expected.values())} words of {len(TEXT)} lines on {app.config.brokers}:")
    for word, count in sorted(published.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {word:>7}: {count}")
    assert published == expected, "the output topic disagrees with the store"
    await admin.delete_topics([LINES, COUNTS])
    await admin.stop()


async def latest_counts(transport, topic: str) -> dict[str, int]:
    """The last count published for each word, reading every partition from its start to its end."""
    consumer = transport.consumer(None)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    await consumer.seek_to_committed_or_reset(partitions)
    ends = await consumer.end_offsets(partitions)
    latest = {}
    while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
        for records in (await consumer.poll(500)).values():
            latest.update((r.key.decode(), int(r.value)) for r in records)
    await consumer.stop()
    return latest


if __name__ == "__main__":
    asyncio.run(main())
