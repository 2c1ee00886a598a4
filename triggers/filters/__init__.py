"""Filter dialects, one module each, sharing the tri-state verdict of
:mod:`triggers.filters.verdict` (Knative's pass / fail / no-filter)."""
