"""Data types of the vending policy: what a parsed document holds, what a request carries and
what evaluation decides.

Everything here is a frozen dataclass so one parsed ``Policy`` can be shared by every request a
warm Lambda container serves, from any thread, without copying.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias

from kernel_access.policy.groups import EMPTY_ATTRIBUTES
from kernel_access.policy.patterns import PrincipalPattern
from kernel_access.policy.timewindow import TimeWindow

Effect: TypeAlias = Literal["allow", "deny"]
CodeArtifactAccess: TypeAlias = Literal["read", "publish"]
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: AssumeRole from a Lambda is role chaining: sessions are 900-3600 s.
MIN_DURATION = 900
MAX_DURATION = 3600
DEFAULT_MAX_DURATION = 3600


@dataclass(frozen=True)
class PolicyIssue:
    """One problem found while parsing: which rule (``None`` = the document), which field, what."""

    rule_id: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"rule {self.rule_id!r}" if self.rule_id is not None else "document"
        return f"{where}: {self.field}: {self.message}"


class PolicyValidationError(ValueError):
    """The document is not a valid policy. ``errors`` lists every problem, not just the first,
    so an operator fixes a broken policy in one round trip."""

    def __init__(self, errors: list[PolicyIssue]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  - {issue}" for issue in self.errors)
        super().__init__(f"invalid policy ({len(self.errors)} error(s)):\n{lines}")


@dataclass(frozen=True)
class PartnerInfo:
    """A partner as the infrastructure knows it (derived from the ``partners`` config list).

    ``account_id`` and ``organization_id`` are what IAM bound the partner to when its session was
    created (the trust statement's account and ``aws:PrincipalOrgID``): rule conditions on accounts
    and organizations compare these, never the kernel-access session the authorizer describes.
    """

    account_id: str
    in_organization: bool
    #: The organization an in-organization partner belongs to; ``None`` for external partners.
    organization_id: str | None = None
    #: Attributes rules select partners by (``partner_attributes``, ``groups``).
    attributes: Mapping[str, str] = field(default_factory=lambda: EMPTY_ATTRIBUTES)


@dataclass(frozen=True)
class CodeArtifactCondition:
    """Which CodeArtifact tokens a rule covers and, for allow rules, which access level it mints."""

    domains: frozenset[str]
    #: ``None`` = any repository (and requests that name none).
    repositories: frozenset[str] | None
    #: Required on allow rules; ``None`` only on deny rules (then it denies every access level).
    access: CodeArtifactAccess | None


@dataclass(frozen=True)
class SessionPolicy:
    """What narrows an allowed session: passed to AssumeRole as ``Policy``/``PolicyArns``."""

    #: The inline policy serialised compactly (what STS receives), ``None`` when absent.
    inline_json: str | None
    managed_policy_arns: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    """One policy rule. A condition that is ``None`` was absent from the document: it matches any
    request. A rule matches when every present condition matches."""

    id: str
    effect: Effect
    description: str | None = None
    partners: frozenset[str] | None = None
    #: ``partner_groups`` / ``partner_attributes`` compiled to the partners they admit (see groups).
    group_members: frozenset[str] | None = None
    attribute_members: frozenset[str] | None = None
    accounts: frozenset[str] | None = None
    organization_ids: frozenset[str] | None = None
    principal_arns: tuple[PrincipalPattern, ...] | None = None
    roles: frozenset[str] | None = None
    codeartifact: CodeArtifactCondition | None = None
    source_cidrs: tuple[IPNetwork, ...] | None = None
    time_window: TimeWindow | None = None
    max_duration: int = DEFAULT_MAX_DURATION
    session_policy: SessionPolicy | None = None


@dataclass(frozen=True)
class AccessRequest:
    """What a caller asks for, with the identity facts the authorizer verified.

    Exactly one of ``role`` (a credential request) and ``codeartifact_domain`` (a token request)
    should be set; a request naming both or neither is denied by evaluation.
    """

    caller_arn: str
    #: The partner's bound account and organization (``None`` when unknown): build requests with
    #: :func:`kernel_access.policy.access_request_for`, which derives them as the Lambda does.
    account_id: str | None
    org_id: str | None
    source_ip: str | None
    #: When the request happens; must be timezone-aware (time windows are zone-specific).
    at: datetime
    partner: str | None
    role: str | None = None
    codeartifact_domain: str | None = None
    codeartifact_repository: str | None = None
    #: Requested session/token duration in seconds; ``None`` = the rule's maximum.
    duration: int | None = None

    def __post_init__(self) -> None:
        # A naive datetime would silently be read as the server's local time: refuse it early.
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("AccessRequest.at must be a timezone-aware datetime")


@dataclass(frozen=True)
class Decision:
    """The outcome of evaluating one request."""

    allowed: bool
    #: The rule that decided, ``None`` when no rule matched (or the request was malformed).
    rule_id: str | None
    reason: str
    #: The deciding allow rule's maximum duration; 0 on a deny.
    max_duration: int
    session_policy: SessionPolicy | None
    #: For an allowed token request: the access level to mint with.
    codeartifact_access: CodeArtifactAccess | None
    #: For an allow: the duration to grant (the requested one, or the rule's maximum). ``None`` on deny.
    duration: int | None = None
