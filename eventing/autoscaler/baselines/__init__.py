"""Faithful re-implementations of the autoscalers we are measured against.

Why re-implement instead of approximate: a comparison against a straw man proves
nothing. Each module follows the pseudo-code and defaults of
``shared/reference/autoscaler-algorithms.md`` (read from the upstream sources) and says
which defaults it uses: :mod:`.keda` (KEDA operator + :mod:`.hpa`, the legacy
Kubernetes HPA path KEDA gets by default) and :mod:`.kpa` (Knative's KPA with
:mod:`.kpa_window`). They are simulator policies only: they never run in production.
"""
