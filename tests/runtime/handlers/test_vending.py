"""The vending handler's invocation boundary: each invocation's metrics are its own."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from aws_lambda_powertools.warnings import PowertoolsUserWarning
from kernel_access.contract import CREDENTIALS_ROUTE
from kernel_access.errors import KernelAccessError
from kernel_access.handlers import vending
from kernel_access.vending.context import VendingRequestContext

from tests.runtime.conftest import FakeLambdaContext, http_event
from tests.runtime.vending.test_credentials import call

pytestmark = pytest.mark.usefixtures("secrets_scan")


def _left_by_a_disabled_metrics_invocation(service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # With metrics disabled Powertools never flushes, so it never clears the set either.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert call(service, http_event("/credentials", {"role": "kernel-reader"}))[0] == 200


def _left_by_a_call_outside_an_invocation(service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    request = VendingRequestContext.from_event(
        http_event("/credentials", {"role": "kernel-admin"}), route=CREDENTIALS_ROUTE.route_key
    )
    with pytest.raises(KernelAccessError):
        service.credentials(request)


@pytest.mark.parametrize(
    "leave_route", [_left_by_a_disabled_metrics_invocation, _left_by_a_call_outside_an_invocation]
)
def test_a_hostile_event_meets_no_route_dimension_of_another_request(
    make_service: Any, monkeypatch: pytest.MonkeyPatch, leave_route: Any
) -> None:
    """Regression: Telemetry puts ``route`` on Powertools' process-wide metric set, which only a
    flush clears; a route left there (``GET /credentials``) met the hostile event's ``unknown``
    and Powertools warned "Dimension 'route' has already been added" — and would have published
    the earlier request's metrics under the later request's route."""
    service = make_service()
    leave_route(service, monkeypatch)
    vending.reset_for_tests(service)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            response = vending.handler({"rawPath": "/credentials"}, FakeLambdaContext())
    finally:
        vending.reset_for_tests(None)
        vending.metrics.clear_metrics()  # leave nothing behind for the next test either
    assert response["statusCode"] == 400
    assert [str(w.message) for w in caught if issubclass(w.category, PowertoolsUserWarning)] == []
