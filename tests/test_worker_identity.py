"""The worker id that names exactly_once_v2's transactional producer, and the guarantee setting."""

from __future__ import annotations

import pytest

from streams.config import StreamsConfig
from streams.runtime.identity import ID_FILE, WorkerId


def test_the_id_survives_a_restart_on_the_same_state_directory(tmp_path):
    first = WorkerId(tmp_path / "app")
    value = first.value
    first.release()
    again = WorkerId(tmp_path / "app")
    assert again.value == value and (tmp_path / "app" / ID_FILE).read_text() == value
    again.release()


def test_a_second_worker_on_a_held_directory_takes_a_fresh_id_and_leaves_the_file(tmp_path):
    holder = WorkerId(tmp_path)
    other = WorkerId(tmp_path)
    assert other.value != holder.value
    assert (tmp_path / ID_FILE).read_text() == holder.value
    other.release()
    holder.release()


def test_an_unreadable_id_file_is_replaced(tmp_path):
    (tmp_path / ID_FILE).write_bytes(b"\xff\xfe not an id\n")
    worker_id = WorkerId(tmp_path)
    assert worker_id.value.isalnum() and (tmp_path / ID_FILE).read_text() == worker_id.value
    worker_id.release()


def test_processing_guarantees():
    assert StreamsConfig("a", processing_guarantee="exactly_once_v2").producer_per_task is False
    assert StreamsConfig("a", processing_guarantee="exactly_once").producer_per_task is True
    for guarantee in ("exactly_once_v2", "exactly_once"):
        config = StreamsConfig("a", processing_guarantee=guarantee)
        assert config.exactly_once and config.commit_interval == 0.1
    assert not StreamsConfig("a").exactly_once
    with pytest.raises(ValueError, match="processing_guarantee"):
        StreamsConfig("a", processing_guarantee="exactly-once")
