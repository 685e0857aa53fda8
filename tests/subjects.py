"""Each test module's subject, so that `pytest -m sdk` (app, functions, local, docs) selects one.

- sdk: the installable Htouhui client (protocol, models, client, page, its CLI);
- app: the onboarding application (rules, store, configuration, observability, operator tools);
- functions: the Lambda handlers and template.yaml (routes, alarms, limits, the SAM build);
- local: the local stack, the sandbox, the bench and the end-to-end flows through them;
- docs: the documentation, the spec copies, the Makefile and the generated OpenAPI document.
"""

from __future__ import annotations

SUBJECTS: dict[str, frozenset[str]] = {
    "sdk": frozenset(
        {
            "test_cli",
            "test_client",
            "test_form_parser",
            "test_models",
            "test_page",
            "test_profile_plumbing",
            "test_protocol_profiles",
            "test_protocol_properties",
            "test_protocol_vectors",
            "test_sdk_install",
            "test_security_review",
        }
    ),
    "app": frozenset(
        {
            "test_admin",
            "test_admin_commands",
            "test_api_errors",
            "test_config",
            "test_data_lifecycle",
            "test_data_rights",
            "test_data_rights_events",
            "test_layer_contract",
            "test_layer_typecheck",
            "test_observability",
            "test_one_configuration",
            "test_onboarding",
            "test_priming",
            "test_probe",
            "test_reconcile_sample",
            "test_reconcile_sandbox",
            "test_reconcile_schedule",
            "test_refresh_budget",
            "test_source_ip",
            "test_status_events",
            "test_store",
            "test_tolerant_answers",
            "test_tolerant_reader",
            "test_user_view",
        }
    ),
    "functions": frozenset(
        {
            "test_alarm_metrics",
            "test_alarm_resources",
            "test_alarms",
            "test_china",
            "test_cold_start",
            "test_custom_domain",
            "test_dashboard",
            "test_egress",
            "test_handlers_errors",
            "test_handlers_notify",
            "test_handlers_onboarding",
            "test_handlers_reconcile",
            "test_hostile_faults",
            "test_hostile_forgery",
            "test_hostile_input",
            "test_hostile_page",
            "test_import_paths",
            "test_notify_allow_list",
            "test_refresh_route",
            "test_route_limits",
            "test_sam_build",
            "test_template",
            "test_template_profile",
        }
    ),
    "local": frozenset(
        {
            "test_bench_run",
            "test_bench_cost",
            "test_bench_scale",
            "test_bench_stats",
            "test_browser_flow",
            "test_demo",
            "test_hostile_stack",
            "test_local_stack",
            "test_local_stack_template_copy",
            "test_profiles_flow",
            "test_sandbox_api",
            "test_sandbox_controls",
            "test_sandbox_delivery",
            "test_sandbox_pages",
            "test_sigv4_refusals",
            "test_sigv4_stack",
            "test_sigv4_suite",
            "test_stack_apigw",
            "test_stack_ports",
            "test_stack_reset",
            "test_stack_sources",
            "test_stack_sqs",
            "test_stack_startup",
            "test_stack_template",
        }
    ),
    "docs": frozenset(
        {
            "test_docs",
            "test_docs_names",
            "test_entry_points",
            "test_makefile_help",
            "test_openapi_fresh",
            "test_readme_layout",
            "test_runbook",
            "test_spec_copies",
            "test_test_layout",
        }
    ),
}


def subject_of(module: str) -> str | None:
    found = [subject for subject, modules in SUBJECTS.items() if module in modules]
    return found[0] if len(found) == 1 else None
