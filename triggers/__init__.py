"""Trigger filters: one module per dialect, CESQL, and materialisation of a trigger's
filter spec into a filter tree built once per trigger."""
