"""The garbage collector's young-generation threshold while workers run (streams/gcpause.py)."""

from __future__ import annotations

import gc

import pytest

from streams import App
from streams.config import StreamsConfig
from streams.gcpause import hold_young_threshold, release_young_threshold
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, produce, running


@pytest.fixture
def python_thresholds():
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_holds_raise_the_young_threshold_and_the_last_release_restores_it(python_thresholds):
    young, *older = python_thresholds
    hold_young_threshold(50_000)
    hold_young_threshold(80_000)  # a second worker in the same process
    assert gc.get_threshold() == (80_000, *older)
    release_young_threshold(80_000)
    assert gc.get_threshold() == (50_000, *older)
    release_young_threshold(50_000)
    assert gc.get_threshold() == python_thresholds


def test_a_threshold_of_0_and_one_below_pythons_change_nothing(python_thresholds):
    hold_young_threshold(0)
    assert gc.get_threshold() == python_thresholds
    hold_young_threshold(1)
    assert gc.get_threshold() == python_thresholds
    release_young_threshold(1)
    release_young_threshold(0)
    assert gc.get_threshold() == python_thresholds


def test_the_setting_is_checked_and_read_from_the_environment():
    with pytest.raises(ValueError, match="^gc_young_threshold"):
        StreamsConfig("a", gc_young_threshold=-1)
    assert StreamsConfig.build("a", {}, {"STREAMS_GC_YOUNG_THRESHOLD": "20000"}).gc_young_threshold == 20_000
    assert StreamsConfig("a").gc_young_threshold == 50_000


@pytest.mark.parametrize("setting", [None, 0])
async def test_a_worker_holds_the_threshold_while_it_runs(brokers, tmp_path, python_thresholds, setting):
    src = unique_name("in")
    await create_topics(brokers, {src: 1})
    await produce(brokers, src, [("k", 1)])  # the topic's metadata is out before the worker looks
    settings = {} if setting is None else {"gc_young_threshold": setting}
    app = App(unique_name("gc"), brokers=brokers, state_dir=tmp_path, consumer_config=FAST_GROUP, **settings)
    app.stream(src).foreach(lambda key, value: None)
    async with running(app):
        running_threshold = gc.get_threshold()[0]
    assert running_threshold == (50_000 if setting is None else python_thresholds[0])
    assert gc.get_threshold() == python_thresholds
