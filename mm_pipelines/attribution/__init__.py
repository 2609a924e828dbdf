"""Multi-touch attribution: the configuration, the data-driven solvers, and the reference and Spark engines.

docs/attribution.md is the specification; every engine implements it and tests hold them to it."""
