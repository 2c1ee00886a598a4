"""The user's interface: typed models of the YAML resources and the loader.

Knative's kinds (Broker, Trigger, and the sources) keep Knative's ``apiVersion``,
``kind`` and field names so manifests move between the two unchanged; what Knative
lacks (Workload, MQTT and generic webhook sources) lives in our own API group
:data:`eventing.resources.base.OUR_GROUP`.
"""
