package dev.streams.oracle;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.ValueJoiner;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The reference side of the differential tests: runs topologies on Kafka Streams and writes their
 * results as JSON, so that tests/test_oracle_*.py can compare them with what streams produces from
 * the same input.
 *
 * <pre>
 * java -cp 'target/classes:target/lib/*' dev.streams.oracle.Oracle \
 *     --bootstrap HOST:PORT --app-id ID --state-dir DIR [--timeout-ms MS] SPEC...
 * SPEC = NAME:INPUT[,INPUT2]:OUTPUT[:PARAM=MS,...]
 * </pre>
 *
 * All SPECs run in one application (one sub-topology each, or shared where they read the same
 * input).  Inputs have String keys and values.  Each output record is keyed by the result's key and
 * has a JSON value: {"key", "start", "end", "value"} for windowed counts, {"key", "value"} for
 * joins (a join result is "left|right", with "null" for a missing side; a table tombstone is null).
 *
 * <p>Kinds: tumbling (size, grace), hopping (size, advance, grace), sliding (difference, grace) and
 * session (gap, grace) counts with final results only; join-inner, join-left, join-outer
 * (difference, grace, optional before/after) of two streams; stream-table-inner, stream-table-left;
 * table-inner, table-left, table-outer.
 *
 * <p>Caches are off and the outer join's wall-clock throttle is 0, so that results depend on the
 * input alone.  The program stops by itself once the group has committed every input partition up
 * to the end offset it had at start-up (inputs are written before it starts), and exits 0; it exits
 * 1 if the application fails and 2 on a time-out or bad arguments.
 */
public final class Oracle {

    private static final ValueJoiner<String, String, String> JOINER = (left, right) -> left + "|" + right;

    private final StreamsBuilder builder = new StreamsBuilder();
    private final Map<String, KStream<String, String>> streams = new HashMap<>();
    private final Map<String, KTable<String, String>> tables = new HashMap<>();
    private final Set<String> inputs = new TreeSet<>();

    public static void main(final String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        // Every late record is logged at WARN by the window and join processors: thousands per run.
        System.setProperty("org.slf4j.simpleLogger.log.org.apache.kafka.streams.kstream.internals", "error");
        final Map<String, String> options = new LinkedHashMap<>();
        final List<String> specs = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].startsWith("--") && i + 1 < args.length) {
                options.put(args[i].substring(2), args[++i]);
            } else {
                specs.add(args[i]);
            }
        }
        final String bootstrap = options.get("bootstrap");
        final String appId = options.get("app-id");
        final String stateDir = options.get("state-dir");
        if (bootstrap == null || appId == null || stateDir == null || specs.isEmpty()) {
            System.err.println("usage: Oracle --bootstrap HOST:PORT --app-id ID --state-dir DIR"
                + " [--timeout-ms MS] NAME:INPUT[,INPUT2]:OUTPUT[:PARAM=MS,...]...");
            System.exit(2);
        }
        final Oracle oracle = new Oracle();
        for (final String spec : specs) {
            oracle.add(spec);
        }
        final long timeoutMs = Long.parseLong(options.getOrDefault("timeout-ms", "120000"));
        System.exit(oracle.run(bootstrap, appId, stateDir, timeoutMs));
    }

    private void add(final String spec) {
        final String[] parts = spec.split(":");
        if (parts.length < 3) {
            throw new IllegalArgumentException("bad spec " + spec);
        }
        final String kind = parts[0];
        final String[] in = parts[1].split(",");
        final String out = parts[2];
        final Map<String, Long> p = new HashMap<>();
        if (parts.length > 3) {
            for (final String pair : parts[3].split(",")) {
                final String[] kv = pair.split("=");
                p.put(kv[0], Long.parseLong(kv[1]));
            }
        }
        switch (kind) {
            case "tumbling" -> timeWindowed(in[0], out,
                TimeWindows.ofSizeAndGrace(ms(p, "size"), ms(p, "grace")));
            case "hopping" -> timeWindowed(in[0], out,
                TimeWindows.ofSizeAndGrace(ms(p, "size"), ms(p, "grace")).advanceBy(ms(p, "advance")));
            case "sliding" -> grouped(in[0])
                .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(ms(p, "difference"), ms(p, "grace")))
                .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                    .withCachingDisabled())
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                .toStream()
                .map(Oracle::windowedResult)
                .to(out, Produced.with(Serdes.String(), Serdes.String()));
            case "session" -> grouped(in[0])
                .windowedBy(SessionWindows.ofInactivityGapAndGrace(ms(p, "gap"), ms(p, "grace")))
                .count(Materialized.<String, Long, SessionStore<Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                    .withCachingDisabled())
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                .toStream()
                .map(Oracle::windowedResult)
                .to(out, Produced.with(Serdes.String(), Serdes.String()));
            case "join-inner", "join-left", "join-outer" -> streamJoin(kind, in, out, p);
            case "stream-table-inner" -> result(stream(in[0]).join(table(in[1]), JOINER), out);
            case "stream-table-left" -> result(stream(in[0]).leftJoin(table(in[1]), JOINER), out);
            case "table-inner" -> result(table(in[0]).join(table(in[1]), JOINER).toStream(), out);
            case "table-left" -> result(table(in[0]).leftJoin(table(in[1]), JOINER).toStream(), out);
            case "table-outer" -> result(table(in[0]).outerJoin(table(in[1]), JOINER).toStream(), out);
            default -> throw new IllegalArgumentException("unknown topology " + kind);
        }
    }

    private void timeWindowed(final String in, final String out, final TimeWindows windows) {
        grouped(in)
            .windowedBy(windows)
            .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                .withCachingDisabled())
            .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
            .toStream()
            .map(Oracle::windowedResult)
            .to(out, Produced.with(Serdes.String(), Serdes.String()));
    }

    private void streamJoin(final String kind, final String[] in, final String out, final Map<String, Long> p) {
        JoinWindows windows = JoinWindows.ofTimeDifferenceAndGrace(ms(p, "difference"), ms(p, "grace"));
        if (p.containsKey("before")) {
            windows = windows.before(ms(p, "before"));
        }
        if (p.containsKey("after")) {
            windows = windows.after(ms(p, "after"));
        }
        final Serde<String> s = Serdes.String();
        final KStream<String, String> left = stream(in[0]);
        final KStream<String, String> right = stream(in[1]);
        final StreamJoined<String, String, String> joined = StreamJoined.with(s, s, s);
        final KStream<String, String> joinedStream = switch (kind) {
            case "join-inner" -> left.join(right, JOINER, windows, joined);
            case "join-left" -> left.leftJoin(right, JOINER, windows, joined);
            default -> left.outerJoin(right, JOINER, windows, joined);
        };
        result(joinedStream, out);
    }

    private KGroupedStream<String, String> grouped(final String topic) {
        return stream(topic).groupByKey();
    }

    private KStream<String, String> stream(final String topic) {
        inputs.add(topic);
        return streams.computeIfAbsent(topic, t -> builder.stream(t, Consumed.with(Serdes.String(), Serdes.String())));
    }

    private KTable<String, String> table(final String topic) {
        inputs.add(topic);
        return tables.computeIfAbsent(topic, t -> builder.table(t, Consumed.with(Serdes.String(), Serdes.String()),
            Materialized.<String, String, KeyValueStore<Bytes, byte[]>>with(Serdes.String(), Serdes.String())
                .withCachingDisabled()));
    }

    private static void result(final KStream<String, String> results, final String out) {
        results.map((key, value) -> KeyValue.pair(key,
                "{\"key\":" + quote(key) + ",\"value\":" + (value == null ? "null" : quote(value)) + "}"))
            .to(out, Produced.with(Serdes.String(), Serdes.String()));
    }

    private static KeyValue<String, String> windowedResult(final Windowed<String> key, final Long count) {
        return KeyValue.pair(key.key(), "{\"key\":" + quote(key.key()) + ",\"start\":" + key.window().start()
            + ",\"end\":" + key.window().end() + ",\"value\":" + count + "}");
    }

    private static String quote(final String s) {
        final StringBuilder b = new StringBuilder("\"");
        for (final char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    private static Duration ms(final Map<String, Long> params, final String name) {
        final Long value = params.get(name);
        if (value == null) {
            throw new IllegalArgumentException("missing parameter " + name);
        }
        return Duration.ofMillis(value);
    }

    private int run(final String bootstrap, final String appId, final String stateDir, final long timeoutMs)
            throws Exception {
        final Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        props.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX, 0L);
        props.put("consumer.session.timeout.ms", 10_000);

        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            final Map<TopicPartition, Long> ends = endOffsets(admin);
            final AtomicReference<Throwable> failure = new AtomicReference<>();
            try (KafkaStreams app = new KafkaStreams(builder.build(), props)) {
                app.setUncaughtExceptionHandler(exception -> {
                    failure.set(exception);
                    return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                        .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
                });
                final long started = System.currentTimeMillis();
                app.start();
                final long deadline = started + timeoutMs;
                long running = -1;
                while (true) {
                    if (failure.get() != null || app.state() == KafkaStreams.State.ERROR) {
                        System.err.println("oracle: application failed: " + failure.get());
                        return 1;
                    }
                    if (running < 0 && app.state() == KafkaStreams.State.RUNNING) {
                        running = System.currentTimeMillis();
                    }
                    if (running >= 0 && consumedToEnd(admin, appId, ends)) {
                        final long consumed = System.currentTimeMillis();
                        app.close(Duration.ofSeconds(30));
                        System.err.printf("oracle: running after %d ms, inputs consumed after %d ms, closed after %d ms%n",
                            running - started, consumed - started, System.currentTimeMillis() - started);
                        return 0;
                    }
                    if (System.currentTimeMillis() > deadline) {
                        System.err.println("oracle: inputs not consumed within " + timeoutMs + " ms");
                        return 2;
                    }
                    Thread.sleep(100);
                }
            }
        }
    }

    private Map<TopicPartition, Long> endOffsets(final Admin admin) throws Exception {
        final Map<TopicPartition, OffsetSpec> request = new HashMap<>();
        admin.describeTopics(inputs).allTopicNames().get().forEach((topic, description) ->
            description.partitions().forEach(p -> request.put(new TopicPartition(topic, p.partition()),
                OffsetSpec.latest())));
        final Map<TopicPartition, Long> ends = new HashMap<>();
        admin.listOffsets(request).all().get().forEach((tp, info) -> ends.put(tp, info.offset()));
        return ends;
    }

    private static boolean consumedToEnd(final Admin admin, final String group, final Map<TopicPartition, Long> ends)
            throws Exception {
        final Map<TopicPartition, OffsetAndMetadata> committed =
            admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        for (final Map.Entry<TopicPartition, Long> end : ends.entrySet()) {
            final OffsetAndMetadata offset = committed.get(end.getKey());
            if ((offset == null ? 0L : offset.offset()) < end.getValue()) {
                return false;
            }
        }
        return true;
    }
}
