"""Unit tests of the autoscaling core, the KEDA/KPA baselines and the simulator."""
