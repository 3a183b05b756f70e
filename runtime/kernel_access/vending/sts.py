"""STS AssumeRole for vended sessions: naming, tagging, narrowing, and mapping failures.

Names and tags are built so CloudTrail in the kernel account can tie every action of a vended
session back to the partner caller and the vending request:

- ``RoleSessionName`` = ``<partner>.<request-id>`` (``<caller-account>.<request-id>`` when the
  caller is no known partner) — unique per request, so the assumed-role ARN (and every CloudTrail
  event of the session) names the partner and the request that created it. The partner, not the
  caller's account: callers are sessions of the kernel-access roles, which live in the kernel
  account, so the caller account is the same for every partner;
- ``SourceIdentity`` = ``<caller principal>@<request-id>`` — SourceIdentity survives role chaining
  and cannot be changed by the session holder, so it names the human/job even if the session is
  used to assume further roles;
- session tags ``partner``, ``caller-account``, ``request-id``.

STS's limits (2-64 characters of ``[\\w+=,.@-]``; SourceIdentity never ``aws:``-prefixed; tag values
≤ 256 characters of a restricted set) are enforced here, with a short hash keeping truncated names
distinct. Every failure becomes UPSTREAM_UNAVAILABLE (503) — see :func:`upstream_error`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.validation import sts_safe_name

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import TagTypeDef

STS_NAME_MAX: Final = 64
TAG_VALUE_MAX: Final = 256
EXPIRATION_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
#: Session tag values allow letters, digits, spaces and ``_.:/=+-@`` (we keep to ASCII).
_TAG_BAD_CHARS: Final = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]")
#: STS error codes that mean "try again later" (throttling / service trouble).
THROTTLING_CODES: Final = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
#: Seconds we ask callers to wait after upstream throttling: spreads retries instead of storming.
THROTTLE_RETRY_AFTER: Final = 5.0


class SessionPolicyLike(Protocol):
    """What vending needs of ``kernel_access.policy.SessionPolicy``."""

    @property
    def inline_json(self) -> str | None: ...

    @property
    def managed_policy_arns(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class AssumedCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime
    account_id: str

    def __repr__(self) -> str:  # never let a secret reach a log line through repr()
        return f"AssumedCredentials(access_key_id={self.access_key_id!r}, expiration={self.expiration!r})"

    def container_credentials(self) -> dict[str, str]:
        """The container-credentials JSON SDKs read (``AccountId`` lets them scope the session)."""
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": format_expiration(self.expiration),
            "AccountId": self.account_id,
        }


def format_expiration(at: datetime) -> str:
    return at.astimezone(UTC).strftime(EXPIRATION_FORMAT)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _join_bounded(head: str, separator: str, tail: str, *, full: str) -> str:
    """``head + separator + tail`` within STS_NAME_MAX, keeping the tail (the request id) whole.

    When the head must be cut, a hash of the full caller ARN is kept so two long callers that share
    a prefix still get different names.
    """
    tail = sts_safe_name(tail, max_length=32)
    room = STS_NAME_MAX - len(separator) - len(tail)
    head = sts_safe_name(head, max_length=STS_NAME_MAX)
    if len(head) > room:
        head = head[: room - 9] + "-" + _short_hash(full)
    return sts_safe_name(f"{head}{separator}{tail}", max_length=STS_NAME_MAX)


def caller_principal(user_arn: str) -> str:
    """The last segment of an ARN's resource (role session name, user name, ...)."""
    resource = user_arn.split(":", 5)[-1]
    return resource.rsplit("/", 1)[-1] or resource


def session_name(
    *, caller_arn: str, caller_account: str | None, request_id: str, partner: str | None = None
) -> str:
    head = partner or caller_account
    if not head:
        parts = caller_arn.split(":")
        head = parts[4] if len(parts) > 5 and parts[4] else "unknown"
    return _join_bounded(head, ".", request_id, full=caller_arn)


def source_identity(*, caller_arn: str, request_id: str) -> str:
    name = _join_bounded(caller_principal(caller_arn), "@", request_id, full=caller_arn)
    # ':' is outside the STS character set, so "aws:" can never start the result; be explicit anyway.
    if name.lower().startswith("aws:"):  # pragma: no cover - unreachable by construction
        name = "ka-" + name[3:]
    return name


def tag_value(value: str | None) -> str:
    if not value:
        return "none"
    return _TAG_BAD_CHARS.sub("-", value)[:TAG_VALUE_MAX]


def session_tags(*, partner: str | None, caller_account: str | None, request_id: str) -> list[TagTypeDef]:
    return [
        {"Key": "partner", "Value": tag_value(partner)},
        {"Key": "caller-account", "Value": tag_value(caller_account)},
        {"Key": "request-id", "Value": tag_value(request_id)},
    ]


def account_of_role(role_arn: str) -> str:
    parts = role_arn.split(":")
    return parts[4] if len(parts) > 5 else ""


def upstream_error(service: str, exc: Exception) -> KernelAccessError:
    """Map any failure of an upstream call to UPSTREAM_UNAVAILABLE (503), without its message.

    Throttling gets ``Retry-After`` so well-behaved clients spread out instead of storming. An
    ``AccessDenied`` from STS is also 503, not 403: it means the kernel side is misconfigured
    (a trust policy does not admit the vending role), not that the caller lacks permission —
    the caller cannot fix it and the policy already allowed them. ``retryable`` tells them whether
    waiting helps.
    """
    from botocore.exceptions import ClientError

    code = "Unknown"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
    else:
        code = type(exc).__name__
    throttled = code in THROTTLING_CODES
    retryable = (
        throttled or not isinstance(exc, ClientError) or code in {"ServiceUnavailable", "InternalFailure"}
    )
    return KernelAccessError(
        ErrorCode.UPSTREAM_UNAVAILABLE,
        f"{service} is unavailable; try again later" if retryable else f"{service} refused the request",
        {"upstream": service, "upstream_code": code[:64], "retryable": retryable},
        retry_after=THROTTLE_RETRY_AFTER if throttled else None,
    )


def assume_role(
    client: STSClient,
    *,
    role_arn: str,
    role_session_name: str,
    source_identity_value: str | None,
    tags: Sequence[TagTypeDef] | None,
    duration: int,
    session_policy: SessionPolicyLike | None = None,
) -> AssumedCredentials:
    """AssumeRole with everything above; any failure raises UPSTREAM_UNAVAILABLE."""
    kwargs: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": role_session_name,
        "DurationSeconds": duration,
    }
    if source_identity_value:
        kwargs["SourceIdentity"] = source_identity_value
    if tags:
        kwargs["Tags"] = list(tags)
    if session_policy is not None:
        if session_policy.inline_json:
            kwargs["Policy"] = session_policy.inline_json
        arns = list(session_policy.managed_policy_arns or ())
        if arns:
            kwargs["PolicyArns"] = [{"arn": arn} for arn in arns]
    try:
        response = client.assume_role(**kwargs)
        credentials = response["Credentials"]
        expiration = credentials["Expiration"]
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=UTC)
        return AssumedCredentials(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expiration=expiration,
            account_id=account_of_role(role_arn),
        )
    except Exception as exc:
        raise upstream_error("sts", exc) from None
