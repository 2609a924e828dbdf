"""Multi-touch attribution: the configuration, the data-driven solvers and the Spark engine.

docs/attribution.md is the specification; every engine implements it, and tests hold them to the plain-Python
reference oracle in tests/attribution_oracles/."""
