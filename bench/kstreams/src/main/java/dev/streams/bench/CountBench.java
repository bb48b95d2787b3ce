package dev.streams.bench;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;

/**
 * The Kafka Streams side of bench/kstreams_count.py: count by key with the updates written to an
 * output topic, one stream thread, at-least-once, Kafka Streams' defaults otherwise (its record
 * cache on at 10 MiB unless --cache-bytes says otherwise).
 *
 * <pre>
 * java -cp 'target/classes:target/lib/*' dev.streams.bench.CountBench \
 *     --bootstrap HOST:PORT --app-id ID --state-dir DIR --input TOPIC --output TOPIC --records N
 *     [--commit-interval-ms MS] [--cache-bytes N]
 * </pre>
 *
 * A pass-through processor in front of the count notes when the first record arrives and, when the
 * N-th has been processed, asks for a commit at once, as the streams sides commit as soon as they
 * have consumed the last record; the parent times the end from the group's committed offsets.
 * It prints one JSON line: first (epoch seconds), end (when this process saw the offsets of all N
 * records committed), records, cpu (process CPU seconds from the first record to the end).
 */
public final class CountBench {

    private static final CountDownLatch LAST = new CountDownLatch(1);
    private static final AtomicLong SEEN = new AtomicLong();  // over all tasks: each has its own Marker
    private static volatile long firstMillis;
    private static volatile long firstCpuNanos;

    private CountBench() {
    }

    /** Passes every record on; marks the first and requests a commit after the N-th. */
    static final class Marker implements FixedKeyProcessor<String, byte[], byte[]> {
        private final long expected;
        private FixedKeyProcessorContext<String, byte[]> context;

        Marker(long expected) {
            this.expected = expected;
        }

        @Override
        public void init(FixedKeyProcessorContext<String, byte[]> context) {
            this.context = context;
        }

        @Override
        public void process(FixedKeyRecord<String, byte[]> record) {
            if (firstMillis == 0) {
                firstMillis = System.currentTimeMillis();
                firstCpuNanos = cpuNanos();
            }
            context.forward(record);
            if (SEEN.incrementAndGet() == expected) {
                context.commit();
                LAST.countDown();
            }
        }
    }

    static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new java.util.HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        }
        String bootstrap = args.get("bootstrap");
        String appId = args.get("app-id");
        long records = Long.parseLong(args.get("records"));

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args.get("state-dir"));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(args.getOrDefault("commit-interval-ms",
                "1000")));
        if (args.containsKey("cache-bytes")) {
            props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, Long.parseLong(args.get("cache-bytes")));
        }
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

        // The input: String keys; the count never looks at values, so they stay bytes.
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(args.get("input"), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .processValues(() -> new Marker(records))
                .groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
                .count(Materialized.as("counts"))
                .toStream()
                .to(args.get("output"), Produced.with(Serdes.String(), Serdes.Long()));

        Properties adminProps = new Properties();
        adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (KafkaStreams streams = new KafkaStreams(builder.build(), props); Admin admin = Admin.create(adminProps)) {
            streams.start();
            if (!LAST.await(30, TimeUnit.MINUTES)) {
                throw new IllegalStateException("the last record never arrived");
            }
            long committed = 0;
            while (committed < records) {
                Thread.sleep(20);
                committed = 0;
                Map<TopicPartition, OffsetAndMetadata> offsets =
                        admin.listConsumerGroupOffsets(appId).partitionsToOffsetAndMetadata().get();
                for (Map.Entry<TopicPartition, OffsetAndMetadata> entry : offsets.entrySet()) {
                    if (entry.getKey().topic().equals(args.get("input")) && entry.getValue() != null) {
                        committed += entry.getValue().offset();
                    }
                }
            }
            long endMillis = System.currentTimeMillis();
            long endCpuNanos = cpuNanos();
            System.out.printf("{\"first\": %.3f, \"end\": %.3f, \"records\": %d, \"cpu\": %.3f}%n",
                    firstMillis / 1000.0, endMillis / 1000.0, records, (endCpuNanos - firstCpuNanos) / 1e9);
            System.out.flush();
            streams.close(Duration.ofSeconds(30));
        }
    }
}
