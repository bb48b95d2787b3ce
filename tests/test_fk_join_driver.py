"""Foreign-key table-table joins without a broker: by example through the TestDriver, and against a model of
the current tables over random update sequences, both with the TestDriver's in-order delivery and with the
subscription and response topics' partitions delivered in random interleavings (stale responses happen
then) and tasks restarted over their stores."""

from __future__ import annotations

import random
from collections import deque

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import App
from streams.partitioner import partition_for
from streams.runtime.stores import TaskStore
from streams.task.task import Task
from streams.testing import TestDriver
from streams.transport.base import OutRecord, RawRecord, TopicPartition

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pair(left, right):
    return [left, right]


def fk_app(kind: str, **app_options) -> App:
    app = App("fk", brokers="unused:9092", **app_options)
    orders, customers = app.table("orders"), app.table("customers")
    join = orders.join if kind == "inner" else orders.left_join
    join(customers, pair, foreign_key=lambda order: order["customer"], name="oc").to("out")
    return app


def view_of(records, view: dict) -> dict:
    for key, value in records:
        if value is None:
            view.pop(key, None)
        else:
            view[key] = value
    return view


def test_inner_join_follows_both_sides_and_unsubscribes_a_changed_foreign_key():
    with TestDriver(fk_app("inner"), partitions={"orders": 2, "customers": 3}) as driver:
        assert driver.plan.partition_counts["fk-oc-subscription-repartition"] == 3
        assert driver.plan.partition_counts["fk-oc-response-repartition"] == 2
        driver.pipe_input("orders", "o1", {"customer": "c1", "n": 1})  # no customer yet: a (redundant) delete
        driver.pipe_input("customers", "c1", "Ann")
        driver.pipe_input("orders", "o1", {"customer": "c1", "n": 2})
        assert driver.read_key_values("out") == [("o1", None), ("o1", [{"customer": "c1", "n": 1}, "Ann"]),
                                                 ("o1", [{"customer": "c1", "n": 2}, "Ann"])]
        driver.pipe_input("orders", "o1", {"customer": "c2", "n": 2})  # c2 is unknown: the old result goes
        assert driver.read_key_values("out") == [("o1", None)]
        driver.pipe_input("customers", "c1", "Annie")  # o1 no longer subscribes to c1
        assert driver.read_key_values("out") == []
        driver.pipe_input("customers", "c2", "Bob")
        driver.pipe_input("customers", "c2", None)  # a right delete deletes the results that used it
        driver.pipe_input("customers", "c2", "Bo")
        driver.pipe_input("orders", "o1", None)  # a left delete
        assert driver.read_key_values("out") == [("o1", [{"customer": "c2", "n": 2}, "Bob"]), ("o1", None),
                                                 ("o1", [{"customer": "c2", "n": 2}, "Bo"]), ("o1", None)]
        assert dict(driver.store("oc-subscriptions-store").items()) == {}


def test_left_join_keeps_every_left_row_and_a_none_foreign_key():
    with TestDriver(fk_app("left")) as driver:
        driver.pipe_input("orders", "o1", {"customer": None})
        driver.pipe_input("orders", "o2", {"customer": "c1"})
        driver.pipe_input("customers", "c1", "Ann")
        driver.pipe_input("orders", "o2", {"customer": None})
        driver.pipe_input("customers", "c1", None)
        assert driver.read_key_values("out") == [
            ("o1", [{"customer": None}, None]), ("o2", [{"customer": "c1"}, None]), ("o2", [{"customer": "c1"}, "Ann"]),
            ("o2", [{"customer": None}, None])]


def test_a_failing_foreign_key_extractor_goes_to_the_error_policy_and_arguments_are_checked():
    app = fk_app("inner", on_error="skip")
    with TestDriver(app) as driver:
        driver.pipe_input("orders", "o1", {"no": "customer"})
        assert driver.tasks["0_0"].metrics.get("skipped_records") == 1
        assert dict(driver.store("oc-left-store").items()) == {}
    app = App("fk", brokers="unused:9092")
    orders = app.table("orders")
    with pytest.raises(TypeError, match="foreign_key must be a function"):
        orders.join(app.table("customers"), pair, foreign_key="customer")
    with pytest.raises(TypeError, match="another Table"):
        orders.join(app.stream("s"), pair, foreign_key=lambda o: o)
    with pytest.raises(ValueError, match="same app"):
        orders.left_join(App("other", brokers="unused:9092").table("c"), pair, foreign_key=lambda o: o)


def test_tables_computed_through_repartition_topics_size_the_join_topics():
    app = App("fk", brokers="unused:9092")
    orders = app.stream("orders").group_by(lambda k, o: o["id"], name="by-id").reduce(lambda a, b: b, name="orders")
    customers = app.stream("cust").group_by(lambda k, c: c["id"], name="cby").reduce(lambda a, b: b, name="cust")
    orders.join(customers, lambda o, c: [o["n"], c["name"]], foreign_key=lambda o: o["customer"], name="j").to("out")
    with TestDriver(app, partitions={"orders": 3, "cust": 2}) as driver:
        counts = driver.plan.partition_counts
        assert counts["fk-j-subscription-repartition"] == counts["fk-cby-repartition"] == 2
        assert counts["fk-j-response-repartition"] == counts["fk-by-id-repartition"] == 3
        driver.pipe_input("cust", "x", {"id": "c1", "name": "Ann"})
        driver.pipe_input("orders", "y", {"id": "o1", "customer": "c1", "n": 1})
        assert driver.read_key_values("out") == [("o1", [1, "Ann"])]


def test_a_table_joins_itself_by_foreign_key():
    app = App("fk", brokers="unused:9092")
    employees = app.table("employees")
    employees.left_join(employees, lambda e, boss: [e["name"], boss and boss["name"]],
                        foreign_key=lambda e: e.get("manager"), name="boss").to("out")
    with TestDriver(app, partitions={"employees": 3}) as driver:
        driver.pipe_input("employees", "e1", {"name": "Ann"})
        driver.pipe_input("employees", "e2", {"name": "Bob", "manager": "e1"})
        driver.pipe_input("employees", "e1", {"name": "Annie"})
        assert driver.read_key_values("out") == [("e1", ["Ann", None]), ("e2", ["Bob", "Ann"]),
                                                 ("e1", ["Annie", None]), ("e2", ["Bob", "Annie"])]


# -- against a model


def expected_join(kind: str, orders: dict, customers: dict) -> dict:
    view = {}
    for key, order in orders.items():
        customer = customers.get(order["customer"]) if order["customer"] is not None else None
        if customer is not None or kind == "left":
            view[key] = [order, customer]
    return view


order_values = st.one_of(st.none(), st.builds(lambda c, n: {"customer": c, "n": n},
                                              st.sampled_from(["c1", "c2", "c3", None]), st.integers(0, 2)))
updates = st.lists(st.one_of(st.tuples(st.just("orders"), st.sampled_from(["o1", "o2", "o3"]), order_values),
                             st.tuples(st.just("customers"), st.sampled_from(["c1", "c2", "c3"]),
                                       st.one_of(st.none(), st.sampled_from(["Ann", "Bob"])))),
                   max_size=40)


@PROPERTY
@given(updates, st.sampled_from(["inner", "left"]))
def test_the_result_table_always_equals_the_join_of_the_current_tables(events, kind):
    tables: dict[str, dict] = {"orders": {}, "customers": {}}
    view: dict = {}
    with TestDriver(fk_app(kind), partitions={"orders": 2, "customers": 3}) as driver:
        for topic, key, value in events:
            driver.pipe_input(topic, key, value)
            if value is None:
                tables[topic].pop(key, None)
            else:
                tables[topic][key] = value
            view_of(driver.read_key_values("out"), view)
            assert view == expected_join(kind, tables["orders"], tables["customers"])


class Network:
    """The join's tasks with the internal topics in between, delivered one record at a time in any
    interleaving of their partitions (each partition stays in order, as in Kafka)."""

    def __init__(self, app: App, partitions: dict[str, int]) -> None:
        driver = TestDriver(app, partitions=partitions)
        self.plan, self.counts, self.policy = driver.plan, driver.partition_counts, driver.error_policy
        driver.close()
        self.internal = set(self.plan.topology.repartition_topics)
        self.stores = {task_id: {s.name: TaskStore(s, plan.partition, None) for s in plan.subtopology.stores}
                       for task_id, plan in self.plan.tasks.items()}
        self.tasks = {task_id: self._task(task_id) for task_id in self.plan.tasks}
        self.queues: dict[TopicPartition, deque[OutRecord]] = {}
        self.offsets: dict[TopicPartition, int] = {}
        self.output: list[tuple] = []

    def _task(self, task_id: str) -> Task:
        return Task(self.plan.tasks[task_id], "fk", self.counts, self.policy, stores=self.stores[task_id])

    def restart(self) -> None:
        """Commit every task's stores and start new tasks over them (the in-flight records stay in flight)."""
        for task_id, task in self.tasks.items():
            task.changelog_output()
            task.checkpoint_stores({})
            self.tasks[task_id] = self._task(task_id)

    def put(self, topic: str, key: str, value) -> None:
        raw_key = key.encode()
        self._deliver(OutRecord(topic, partition_for(raw_key, self.counts[topic]), raw_key,
                                None if value is None else orjson.dumps(value), 0, ()))

    def deliver_one(self, rng: random.Random) -> bool:
        ready = [tp for tp, queue in self.queues.items() if queue]
        if not ready:
            return False
        self._deliver(self.queues[rng.choice(sorted(ready))].popleft())
        return True

    def _deliver(self, out: OutRecord) -> None:
        tp = TopicPartition(out.topic, out.partition)
        offset = self.offsets[tp] = self.offsets.get(tp, -1) + 1
        task = self.tasks[self.plan.task_of[tp]]
        task.process({tp: [RawRecord(out.topic, out.partition, offset, 0, out.key, out.value, ())]})
        for record in task.take_output():
            if record.topic in self.internal:
                self.queues.setdefault(TopicPartition(record.topic, record.partition), deque()).append(record)
            else:
                self.output.append((record.key.decode(), None if record.value is None else orjson.loads(record.value)))


@PROPERTY
@given(st.lists(st.one_of(updates.flatmap(lambda u: st.just(("update", u))),
                          st.just(("deliver", None)), st.just(("restart", None))), max_size=30),
       st.sampled_from(["inner", "left"]), st.randoms(use_true_random=False))
def test_stale_responses_are_dropped_whatever_the_delivery_order(steps, kind, rng):
    network = Network(fk_app(kind), {"orders": 2, "customers": 3})
    tables: dict[str, dict] = {"orders": {}, "customers": {}}
    view: dict = {}
    def settle() -> None:
        for key, value in network.output:  # every result joins the left row as it is now
            assert value is None or value[0] == tables["orders"].get(key)
        view_of(network.output, view)
        network.output.clear()

    for action, batch in steps:
        if action == "restart":
            network.restart()
        elif action == "deliver":
            for _ in range(rng.randint(1, 4)):
                network.deliver_one(rng)
                settle()
        else:
            for topic, key, value in batch:
                network.put(topic, key, value)
                if value is None:
                    tables[topic].pop(key, None)
                else:
                    tables[topic][key] = value
                settle()
    while network.deliver_one(rng):
        pass
    view_of(network.output, view)
    assert view == expected_join(kind, tables["orders"], tables["customers"])
