"""Query parsing and caller identity: strict, bounded, identity only from the authorizer."""

from __future__ import annotations

import pytest
from kernel_access.errors import KernelAccessError
from kernel_access.vending.context import VendingRequestContext
from kernel_access.vending.request import parse_credentials_request as parse_credentials
from kernel_access.vending.request import parse_token_request as parse_token

from tests.runtime.conftest import PAYMENTS_ARN, http_event


def _context(event: object) -> VendingRequestContext:
    return VendingRequestContext.from_event(event, route="GET /credentials")


def parse_credentials_request(event: object):
    return parse_credentials(_context(event))


def parse_token_request(event: object):
    return parse_token(_context(event))


def caller_from_event(event: object):
    return _context(event).authenticated_caller()


def test_credentials_request():
    request = parse_credentials_request(
        http_event("/credentials", {"role": "kernel-reader", "duration": "900"})
    )
    assert (request.role, request.duration) == ("kernel-reader", 900)
    assert parse_credentials_request(http_event("/credentials", {"role": "r"})).duration is None


def test_token_request():
    request = parse_token_request(
        http_event("/codeartifact/token", {"domain": "kernel", "repository": "internal", "duration": "3600"})
    )
    assert (request.domain, request.repository, request.duration) == ("kernel", "internal", 3600)


def test_query_parameters_without_raw_query_string():
    event = http_event("/credentials", {"role": "kernel-reader"})
    del event["rawQueryString"]
    assert parse_credentials_request(event).role == "kernel-reader"
    event["queryStringParameters"] = {"role": "kernel-reader", "other": "x"}
    with pytest.raises(KernelAccessError) as exc:
        parse_credentials_request(event)
    assert exc.value.code.value == "INVALID_REQUEST"


def test_identity_only_from_authorizer():
    event = http_event("/credentials", user_arn=PAYMENTS_ARN, account_id="bad", org_id="o-x")
    caller = caller_from_event(event)
    assert caller.user_arn == PAYMENTS_ARN
    assert caller.account_id is None  # malformed facts are dropped, never guessed
    assert caller.org_id is None
    assert caller.source_ip == "203.0.113.7"

    spoofed = http_event("/credentials", user_arn=None, headers={"x-caller-arn": PAYMENTS_ARN})
    spoofed["queryStringParameters"] = {"userArn": PAYMENTS_ARN}
    with pytest.raises(KernelAccessError) as exc:
        caller_from_event(spoofed)
    assert exc.value.code.value == "ACCESS_DENIED"


def test_user_agent_is_bounded_and_printable():
    caller = caller_from_event(http_event("/health", user_agent="a\nb" + "x" * 1000))
    assert caller.user_agent is not None
    assert len(caller.user_agent) == 512
    assert "\n" not in caller.user_agent


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/credentials", {"role": "kernel-reader\n"}, "role"),
        ("/credentials", {"role": "kernel-reader", "duration": "900\n"}, "duration"),
        ("/codeartifact/token", {"domain": "kernel\n"}, "domain"),
        ("/codeartifact/token", {"domain": "kernel", "repository": "internal\n"}, "repository"),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_value(
    path: str, params: dict[str, str], parameter: str
) -> None:
    """Python's ``$`` also matches before a final newline: every caller-supplied value is checked
    with ``fullmatch``, so ``kernel-reader\\n`` is refused rather than carried into a lookup or an
    AWS call."""
    parse = parse_credentials_request if path == "/credentials" else parse_token_request
    with pytest.raises(KernelAccessError) as refused:
        parse(http_event(path, params))
    assert refused.value.code.value == "INVALID_REQUEST"
    assert refused.value.details["parameter"] == parameter
