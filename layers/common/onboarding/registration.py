"""Registering a user and handing out the open-account form; the merchant's view of a user.

Registration(core)
.register(body) -> (UserView, created)     # created: registered now (201)
.open_account(third_party_user_id, body, *, notify_url, default_return_url, own_host) -> OpenAccountPage
.view(third_party_user_id) -> UserView
.refresh(third_party_user_id) -> UserView  # asks Htouhui first, within the refresh budget (onboarding.refresh)
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import ValidationError

from htouhui.errors import HtouhuiProtocolError
from htouhui.models import OpenAccountForm, RegisterRequest, field_rules
from onboarding.core import Core, entry_with_port, host_and_port, required
from onboarding.errors import InvalidInput, MobileMismatch, RefreshBudgetSpent, RegistrationInProgress
from onboarding.models import COMPLETED_STATUS, OpenAccountBody, RegisterBody, UserView
from onboarding.store import ClaimOutcome

if TYPE_CHECKING:
    from htouhui.page import OpenAccountPage  # built by open_account only: register does not import it
    from onboarding.refresh import RefreshBudget

logger = logging.getLogger(__name__)


class Registration:
    def __init__(self, core: Core, refresh_budget: RefreshBudget | None = None) -> None:
        self.core = core
        self.refresh_budget = refresh_budget  # None: refreshes are not counted (the bench, tests of the rules)

    def mobile_digest(self, mobile: str) -> str:
        """What we keep of the mobile: enough to tell "same mobile" on a second register, nothing more."""
        return hashlib.sha256(f"{self.core.policy.partner_id}:{mobile}".encode()).hexdigest()

    def register(self, body: RegisterBody) -> tuple[UserView, bool]:
        core, user = self.core, body.third_party_user_id
        request = RegisterRequest(mobile=body.mobile, password=body.password, third_party_user_id=user)
        core.refuse_ambiguous(request.fields())  # before any write: a refused request changes nothing
        claim = core.store.claim_registration(user, self.mobile_digest(body.mobile), core.clock())
        if claim.outcome is ClaimOutcome.DONE:
            return required(claim.record, "a finished registration claim carries its record").view(), False
        if claim.outcome is ClaimOutcome.IN_PROGRESS:
            raise RegistrationInProgress()
        if claim.outcome is ClaimOutcome.OTHER_MOBILE:
            raise MobileMismatch()
        try:
            answer = core.client().register(request)
            if answer.third_party_user_id != user:
                raise HtouhuiProtocolError("Htouhui's answer names another third_party_user_id")
            htouhui_user_id = answer.htouhui_user_id
            if htouhui_user_id is None:  # RegisterResponse requires it on success: a guard, not a path
                raise HtouhuiProtocolError(
                    "Htouhui's answer has no htouhui_user_id", fields=[("htouhui_user_id", "missing")]
                )
        except Exception:
            self._release(user, claim.token)  # nothing registered on our side: a retry may start over
            raise
        try:
            record = core.store.complete_registration(user, htouhui_user_id, core.clock())
        except Exception:
            # Htouhui has the user, we failed to write it down. Give the lease back so that a retry
            # need not wait for it; Htouhui answers the retry with the same htouhui_user_id.
            self._release(user, claim.token)
            raise
        return record.view(), True

    def _release(self, user: str, token: str | None) -> None:
        try:
            self.core.store.release_claim(user, token)
        except Exception:  # the lease expires by itself; the original failure is the one to report
            logger.warning("registration claim not released", extra={"third_party_user_id": user})

    def open_account(
        self,
        third_party_user_id: str,
        body: OpenAccountBody,
        *,
        notify_url: str,
        default_return_url: str,
        own_host: str | None,
    ) -> OpenAccountPage:
        from htouhui.page import build_open_account_page  # imported before any write: nothing fails after one

        core = self.core
        record = core.registered(third_party_user_id)
        return_url = body.return_url or default_return_url
        if not core.policy.allows_return_url(return_url, own_host=own_host):
            raise InvalidInput([("return_url", "return_url_not_allowed")])
        if _is_own_return_with_query(return_url, default_return_url, own_host):
            # Htouhui appends its signed fields: ours would join them and the return could never verify.
            raise InvalidInput([("return_url", "own_return_url_takes_no_query_or_fragment")])
        try:
            form = OpenAccountForm(
                htouhui_user_id=record.htouhui_user_id or "",
                id_card=body.id_card,
                type=body.type,
                real_name=body.real_name,
                third_party_user_id=third_party_user_id,
                notify_url=notify_url,
                return_url=return_url,
            )
        except ValidationError as exc:
            raise InvalidInput(field_rules(exc, whole="body")) from None
        core.refuse_ambiguous(form.fields())
        merchant_key = core.key_source.keys().merchant_private  # a configuration problem fails before any write
        # Kept before the page is handed out: the reconciler needs the id_card to query Htouhui.
        core.store.mark_open_requested(third_party_user_id, form.id_card, core.clock())
        core.restart_ladder(third_party_user_id)  # a fresh form: checks from now on (a failure fails the request)
        return build_open_account_page(
            form,
            partner_id=core.policy.partner_id,
            action=core.policy.open_account_url,
            merchant_key=merchant_key,
            profile=core.policy.profile,
        )

    def view(self, third_party_user_id: str) -> UserView:
        return self.core.registered(third_party_user_id).view()

    def refresh(self, third_party_user_id: str) -> UserView:
        """Ask Htouhui (query interface), store the answer through the monotonic update, show the result.

        The query is counted against the refresh budget first: over budget, RefreshBudgetSpent and nothing changed.
        """
        record = self.core.registered(third_party_user_id)
        if not record.id_card:
            return record.view()  # the query interface needs the id_card: nothing to ask before open-account
        budget = self.refresh_budget
        if budget is not None:
            now = self.core.clock().timestamp()
            if not budget.take(now):
                from onboarding.observability import REFRESHES_REFUSED, count

                count(REFRESHES_REFUSED)
                raise RefreshBudgetSpent(budget.retry_after(now))
        self.core.check(record)
        view = self.view(third_party_user_id)
        if view.status is None or view.status < COMPLETED_STATUS:
            self.core.restart_quietly(third_party_user_id)  # news: the merchant asked
        return view


def _is_own_return_with_query(return_url: str, own_return_url: str, own_host: str | None) -> bool:
    target, own = urlsplit(return_url), urlsplit(own_return_url)
    hosts = {host_and_port(own_return_url), entry_with_port(own_host, return_url) if own_host else None} - {None}
    is_own = host_and_port(return_url) in hosts and target.path == own.path
    return is_own and bool(target.query or target.fragment or return_url.endswith(("?", "#")))
