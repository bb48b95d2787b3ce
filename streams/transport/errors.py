"""Which errors of a transport are the broker failing for a while, and which are for good.

Both transports raise aiokafka's error classes, so the runtime asks here rather
than importing a client library.  A broker that is down, restarting, frozen or
moving leaders fails requests with connection errors, timeouts and "not leader"
or "coordinator not available" answers; the runtime rides those out by
restarting its tasks from their last commit.  Fencing is not among them (another
worker owns the task), nor are failures that a retry repeats: authorization,
records too large, unsupported versions, bad settings.
"""

from __future__ import annotations

from aiokafka import errors

from streams.errors import TaskFencedError

PERMANENT = (
    errors.AuthenticationFailedError,
    errors.SaslAuthenticationFailed,
    errors.TopicAuthorizationFailedError,
    errors.GroupAuthorizationFailedError,
    errors.ClusterAuthorizationFailedError,
    errors.TransactionalIdAuthorizationFailed,
    errors.RecordTooLargeError,
    errors.MessageSizeTooLargeError,
    errors.RecordListTooLargeError,
    errors.InvalidTopicError,
    errors.UnsupportedVersionError,
    errors.UnsupportedForMessageFormatError,
    errors.InvalidConfigurationError,
    errors.InvalidRequiredAcksError,
)
FENCING = (TaskFencedError, errors.ProducerFenced, errors.InvalidProducerEpoch, errors.InvalidProducerIdMapping)


def broker_unavailable(exc: BaseException) -> bool:
    """Whether `exc` is the broker failing to serve a request, a failure that passes."""
    return isinstance(exc, errors.KafkaError) and not isinstance(exc, PERMANENT + FENCING)
