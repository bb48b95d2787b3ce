"""Subject name strategies: under which registry subject a topic's schemas are kept.

    "topic_name"         <topic>-key / <topic>-value (the default): one schema lineage per topic
    "record_name"        <record name>: one lineage per record type, across topics
    "topic_record_name"  <topic>-<record name>: several record types on one topic

They match Confluent's TopicNameStrategy, RecordNameStrategy and
TopicRecordNameStrategy, so clients of other languages find the same subjects.
A callable (topic, is_key, record_name) -> subject may be given instead.
"""

from __future__ import annotations

from collections.abc import Callable

SubjectNameStrategy = Callable[[str | None, bool, str | None], str]


def topic_name(topic: str | None, is_key: bool, record_name: str | None) -> str:
    return f"{topic}-{'key' if is_key else 'value'}"


def record_name(topic: str | None, is_key: bool, record_name: str | None) -> str:
    return str(record_name)


def topic_record_name(topic: str | None, is_key: bool, record_name: str | None) -> str:
    return f"{topic}-{record_name}"


STRATEGIES: dict[str, SubjectNameStrategy] = {
    "topic_name": topic_name,
    "record_name": record_name,
    "topic_record_name": topic_record_name,
}
NEEDS_TOPIC = (topic_name, topic_record_name)
NEEDS_RECORD_NAME = (record_name, topic_record_name)


def strategy(value: str | SubjectNameStrategy) -> SubjectNameStrategy:
    """The strategy a subject_name_strategy setting names."""
    if callable(value):
        return value
    try:
        return STRATEGIES[value]
    except (KeyError, TypeError):
        raise ValueError(f"subject_name_strategy must be one of {sorted(STRATEGIES)} or a callable "
                         f"(topic, is_key, record_name) -> subject, got {value!r}") from None
