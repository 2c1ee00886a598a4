"""What each collected upstream manifest does here, document by document, and why.

Each refusal has a reason a Knative user would accept; :data:`REASONS` maps it to the
error the loader must give (a regular expression over the messages) and to the
sentence docs/reference.md shows. Keys are paths under ``tests/compat/manifests``;
values list ``(Kind/name, reason)`` per document, ``"loads"`` when it loads (``a+b``:
every error is one of the two reasons; counted under the first).
"""

from __future__ import annotations

from typing import Final

LOADS: Final = "loads"

#: reason -> (pattern every error of the document matches, explanation for users)
REASONS: Final[dict[str, tuple[str, str]]] = {
    "service-ref": (
        r"cannot be resolved on one machine",
        "a ref to a Service or Knative Service: there is no cluster DNS on one machine, "
        "so it has no address (give a uri or refer to a Workload); it loads with "
        "`--kubernetes`, where it resolves to the Service's cluster URL",
    ),
    "not-eventing": (
        r"unknown kind",
        "not an eventing kind (a Namespace, Deployment or Service): run the service as a "
        "Workload, or apply it to Kubernetes and give its URL",
    ),
    "old-version": (
        r"unknown kind|unknown field|valid boolean|bootstrap server|must be one of",
        "an apiVersion Knative no longer serves (messaging v1beta1, sources.eventing "
        "v1alpha1, with its old field shapes): the current Knative refuses it too",
    ),
    "placeholder": (
        r"DNS label|owner/repository|not an ISO-8601 duration|valid integer|must be one of",
        "a placeholder of the documentation (`<example-channel>`, `<duration>`, "
        "`<your GitHub org>/<your GitHub repo>`) that must be replaced before applying, "
        "as on Kubernetes",
    ),
    "invalid-upstream": (
        r"required field is missing|valid list|unknown field",
        "the snippet is invalid for Knative too (a documentation excerpt without its "
        "required `channel`, `filters` written as a map, mis-indented fields)",
    ),
}

Doc = tuple[str, str]

EXPECTED: Final[dict[str, list[Doc]]] = {
    # knative/docs
    "docs/brokers-broker-types-channel-based-broker-readme-block1.yaml": [
        ("Broker/default", LOADS)
    ],
    "docs/brokers-broker-types-kafka-broker-readme-block0.yaml": [
        ("Broker/default", "service-ref")
    ],
    "docs/brokers-broker-types-kafka-broker-readme-block4.yaml": [("Broker/default", LOADS)],
    "docs/brokers-broker-types-kafka-broker-readme-block5.yaml": [
        ("Trigger/my-service-trigger", "service-ref")
    ],
    "docs/brokers-broker-types-rabbitmq-broker-readme-block2.yaml": [
        ("Trigger/high-throughput-trigger", "invalid-upstream")
    ],
    "docs/channels-create-default-channel-block1.yaml": [
        ("Channel/<example-channel>", "placeholder")
    ],
    "docs/event-delivery-block0.yaml": [
        ("Subscription/example-subscription", "placeholder+invalid-upstream")
    ],
    "docs/event-delivery-block1.yaml": [("Broker/with-dead-letter-sink", "placeholder")],
    "docs/features-delivery-retryafter-block0.yaml": [
        ("Subscription/example-subscription", "invalid-upstream")
    ],
    "docs/features-delivery-timeout-block0.yaml": [
        ("Subscription/example-subscription", "invalid-upstream")
    ],
    "docs/flows-sequence-sequence-reply-to-event-display-ping-source.yaml": [
        ("PingSource/ping-source", LOADS)
    ],
    "docs/flows-sequence-sequence-reply-to-event-display-sequence.yaml": [
        ("Sequence/sequence", "service-ref")
    ],
    "docs/flows-sequence-sequence-reply-to-sequence-sequence1.yaml": [
        ("Sequence/first-sequence", "service-ref")
    ],
    "docs/flows-sequence-sequence-reply-to-sequence-sequence2.yaml": [
        ("Sequence/second-sequence", "service-ref")
    ],
    "docs/flows-sequence-sequence-terminal-sequence.yaml": [("Sequence/sequence", "service-ref")],
    "docs/flows-sequence-sequence-with-broker-trigger-display-trigger.yaml": [
        ("Service/sequence-display", "not-eventing"),
        ("Trigger/display-trigger", LOADS),
    ],
    "docs/flows-sequence-sequence-with-broker-trigger-sequence.yaml": [
        ("Sequence/sequence", "service-ref")
    ],
    "docs/flows-sequence-sequence-with-broker-trigger-trigger.yaml": [
        ("Trigger/sequence-trigger", LOADS)
    ],
    "docs/samples-github-source-github-source.yaml": [
        ("GitHubSource/githubsourcesample", "placeholder")
    ],
    "docs/samples-helloworld-helloworld-python-sample-app.yaml": [
        ("Namespace/knative-samples", "not-eventing"),
        ("Broker/default", LOADS),
        ("Deployment/helloworld-python", "not-eventing"),
        ("Service/helloworld-python", "not-eventing"),
        ("Trigger/helloworld-python", LOADS),
    ],
    "docs/samples-kafka-binding-event-source.yaml": [("KafkaSource/kafka-source", "old-version")],
    "docs/samples-parallel-multiple-branches-parallel.yaml": [
        ("Parallel/odd-even-parallel", "service-ref")
    ],
    "docs/samples-parallel-multiple-branches-ping-source.yaml": [("PingSource/ping-source", LOADS)],
    "docs/samples-parallel-mutual-exclusivity-parallel.yaml": [
        ("Parallel/me-odd-even-parallel", "service-ref")
    ],
    "docs/sources-kafka-source-event-source.yaml": [("KafkaSource/kafka-source", "old-version")],
    "docs/sources-kafka-source-readme-block5.yaml": [("KafkaSource/?", "invalid-upstream")],
    "docs/sources-kafka-source-readme-block6.yaml": [
        ("KafkaSource/kafka-source", "invalid-upstream")
    ],
    "docs/sources-ping-source-ping-source-binary.yaml": [
        ("PingSource/test-ping-source-binary", "service-ref")
    ],
    "docs/sources-ping-source-ping-source.yaml": [("PingSource/test-ping-source", "service-ref")],
    "docs/triggers-readme-block10.yaml": [("Trigger/my-service-trigger", "service-ref")],
    "docs/triggers-readme-block11.yaml": [("Trigger/my-service-trigger", "invalid-upstream")],
    "docs/triggers-readme-block12.yaml": [("Trigger/my-service-trigger", "invalid-upstream")],
    # knative/eventing
    "eventing/docs-delivery-imc-one-per-subcriber.yaml": [("InMemoryChannel/imc", "old-version")],
    "eventing/docs-delivery-imc.yaml": [("InMemoryChannel/imc", "old-version")],
    # knative-extensions/eventing-github, eventing-gitlab
    "eventing-github/samples-githubsource.yaml": [
        ("GitHubSource/githubsource-sample", "placeholder"),
        ("Secret/githubsecret", LOADS),
        ("InMemoryChannel/githubchannel", "old-version"),
    ],
    "eventing-gitlab/samples-gitlabsource.yaml": [
        ("GitLabSource/gitlabsource-sample", "service-ref")
    ],
    # knative-extensions/eventing-kafka-broker
    "eventing-kafka-broker/test-config-sacura-resources-101-broker.yaml": [
        ("Broker/broker", LOADS)
    ],
    "eventing-kafka-broker/test-config-sacura-resources-300-trigger.yaml": [
        ("Trigger/trigger", "service-ref")
    ],
    "eventing-kafka-broker/test-config-sacura-sink-source-resources-100-source.yaml": [
        ("KafkaSource/source", "service-ref")
    ],
    # knative-extensions/eventing-rabbitmq
    "eventing-rabbitmq/docs-source-source-example.yaml": [
        ("RabbitmqSource/rabbitmq-source", "service-ref")
    ],
    "eventing-rabbitmq/samples-predeclared-setup-source-files-300-source.yaml": [
        ("RabbitmqSource/rabbitmq-source", "service-ref")
    ],
    "eventing-rabbitmq/samples-quick-setup-broker-files-200-broker.yaml": [
        ("Broker/default", "service-ref")
    ],
    "eventing-rabbitmq/samples-quick-setup-broker-files-300-ping-sources.yaml": [
        ("PingSource/ping-source", LOADS),
        ("PingSource/ping-source-2", LOADS),
    ],
    "eventing-rabbitmq/samples-quick-setup-broker-files-400-trigger.yaml": [
        ("Trigger/failer-trigger", "service-ref")
    ],
    "eventing-rabbitmq/samples-quick-setup-source-files-200-source.yaml": [
        ("RabbitmqSource/rabbitmq-source", "service-ref")
    ],
    "eventing-rabbitmq/samples-retry-configuration-broker-files-400-trigger.yaml": [
        ("Trigger/failer-trigger", "service-ref")
    ],
    "eventing-rabbitmq/samples-trigger-customizations-400-trigger.yaml": [
        ("Trigger/fifo-trigger", "service-ref"),
        ("Trigger/high-throughput-trigger", "service-ref"),
    ],
}
