"""Create the job topic, its push subscription and the dead-letter topic.

Against the emulator (``PUBSUB_EMULATOR_HOST``) this is the whole setup; in
the cloud the deployment (cloudbuild.yaml) does the same with gcloud.
"""

from __future__ import annotations

from google.api_core.exceptions import AlreadyExists
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2

ACK_DEADLINE_S = 600  # longer than the longest job (the worker's limit is 540 s)


def create(project: str, topic: str, push_endpoint: str, max_delivery_attempts: int,
           min_backoff_s: int = 1, max_backoff_s: int = 10, dead_letter_endpoint: str | None = None) -> None:
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(project, topic)
    dead_path = publisher.topic_path(project, f"{topic}-dead")
    for path in (topic_path, dead_path):
        try:
            publisher.create_topic(name=path)
        except AlreadyExists:
            pass
    subscriptions = [
        {"name": subscriber.subscription_path(project, f"{topic}-dead-pull"), "topic": dead_path},
        {
            "name": subscriber.subscription_path(project, f"{topic}-push"),
            "topic": topic_path,
            "push_config": {"push_endpoint": push_endpoint},
            "ack_deadline_seconds": ACK_DEADLINE_S,
            "dead_letter_policy": {"dead_letter_topic": dead_path,
                                   "max_delivery_attempts": max_delivery_attempts},
            "retry_policy": {"minimum_backoff": duration_pb2.Duration(seconds=min_backoff_s),
                             "maximum_backoff": duration_pb2.Duration(seconds=max_backoff_s)},
        },
    ]
    if dead_letter_endpoint is not None:  # the dead-letter function: an outcome for every dead letter
        subscriptions.append({"name": subscriber.subscription_path(project, f"{topic}-dead-push"), "topic": dead_path,
                              "push_config": {"push_endpoint": dead_letter_endpoint},
                              "ack_deadline_seconds": 60})
    for request in subscriptions:
        try:
            subscriber.create_subscription(request=request)
        except AlreadyExists:
            pass
    subscriber.close()
