"""The merchant's onboarding application on AWS, on top of the htouhui SDK: rules, store, API mapping, callbacks,
reconciliation, status events, configuration, observability; operator tooling in `onboarding.ops`."""
