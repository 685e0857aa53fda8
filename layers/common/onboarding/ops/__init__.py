"""Operator tooling, run from a laptop or a terminal, never by a function's request path: admin, probe, erasure,
and the notify function's cold-start priming."""
