"""The local stack: `python -m stack` serves what template.yaml declares, on this machine, without Docker or AWS.

Modules: `template` reads the SAM template (routes, tables, functions, environments, schedules, streams, rules);
`apigw` builds API Gateway HTTP API payload 2.0 events and turns Lambda answers back into HTTP; `lambdas` runs each
function in its own worker subprocess (`worker`); `aws` drives moto's server (tables, streams, the event bus);
`runner` puts it all together; `__main__` is the command line. `inprocess` runs the same functions
inside the caller's process instead, behind the same API emulation (for the tests and the bench).
"""
