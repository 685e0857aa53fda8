"""The business rules of onboarding a user with Htouhui, once, for every function: three rooms over one core.

    onboarding = Onboarding.configured(settings, store, client_factory, *, clock=...)
                 # or Onboarding(Core(policy, keys, store, client_factory, clock=...))
    onboarding.registration   registration.Registration: register, open_account, view, refresh
                              (the register, open_account and query_user functions)
    onboarding.inbound        inbound.Inbound: accept_notification, reapply_notification, accept_return
                              (the notify function; admin reapply)
    onboarding.checks         checks.Checks: dispatch_due, check_scheduled, check_now
                              (the reconciliation dispatcher and worker)

What the rooms share (policy, keys, store, the Htouhui client, the clock, the ladder, the query) is
`core.Core`. Each room is imported on its first use, so a function loads only the room it calls.

Errors (onboarding.errors): UserNotFound (404); Conflict and its subclasses RegistrationRequired,
RegistrationInProgress, MobileMismatch, IdCardMismatch, HtouhuiUserIdMismatch (409); InvalidInput
(400); NotificationRejected(reason, field, rule) (notify: 400 FAIL); StoreUnavailable (503); and the client's
HtouhuiRejected / HtouhuiBusy / HtouhuiTimeout / HtouhuiSignatureError / HtouhuiProtocolError (htouhui.errors).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from onboarding.config import Settings
from onboarding.core import Core, HtouhuiGateway, Policy, utc_now
from onboarding.store import Store

if TYPE_CHECKING:
    from onboarding.checks import Checks
    from onboarding.inbound import Inbound
    from onboarding.refresh import RefreshBudget
    from onboarding.registration import Registration


class Onboarding:
    def __init__(self, core: Core, *, refresh_budget: RefreshBudget | None = None) -> None:
        self.core = core
        self.refresh_budget = refresh_budget  # GET ?refresh=true's own budget (None: not counted)

    @classmethod
    def configured(
        cls,
        settings: Settings,
        store: Store,
        client_factory: Callable[[], HtouhuiGateway],
        *,
        clock: Callable[[], datetime] = utc_now,
        refresh_budget: RefreshBudget | None = None,
    ) -> Onboarding:
        """The rules with this configuration's policy and keys."""
        core = Core(Policy.of(settings), settings, store, client_factory, clock=clock)
        return cls(core, refresh_budget=refresh_budget)

    @property
    def store(self) -> Store:
        return self.core.store

    @cached_property
    def registration(self) -> Registration:
        from onboarding.registration import Registration

        return Registration(self.core, self.refresh_budget)

    @cached_property
    def inbound(self) -> Inbound:
        from onboarding.inbound import Inbound

        return Inbound(self.core)

    @cached_property
    def checks(self) -> Checks:
        from onboarding.checks import Checks

        return Checks(self.core)
