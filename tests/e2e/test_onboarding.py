"""Onboarding a partner without a code change: a new version of the policy object, nothing else.

The emulator runs the synthesised kernel stack with the vending policy in its versioned config
bucket. An operator adds a new in-organization partner (a new account and its attributes) by
writing a new version of the object (no synth, no deploy, no restart); within the store's cache
period the partner's sessions are admitted by a rule written by attribute (``partner_attributes``),
and before the write they were refused. A malformed new version is a failed load: the last good
policy keeps deciding until the staleness bound, then every request is refused with
POLICY_LOAD_FAILED; restoring the previous version (the rollback) serves again.

Local IAM is on, as in AWS: the in-organization role trusts the whole organization
(``aws:PrincipalOrgID``, session name bound to ``${aws:PrincipalAccount}``), so the new account needs
no IAM change, only to be in the organization. The emulator learns the organization's accounts from
cdk.json, so the account that has just joined (and is no partner yet) is declared with
``--organization-account``; an account outside the organization is refused by IAM before the policy
is ever consulted.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from kernel_access import settings
from kernel_access.contract import POLICY_DOCUMENT_KEY
from kernel_access.document_store import DEFAULT_CACHE_SECONDS, DEFAULT_RETRY_SECONDS

from tests.e2e.conftest import PROJECT, Emulator, Response, start_emulator, stop_emulator

NEW_ACCOUNT = "444455556666"
#: An account of no organization: local IAM refuses it the in-organization role.
OUTSIDE_ACCOUNT = "777788889999"
#: Short, so the fail-closed half of the test takes seconds rather than the default five minutes.
MAX_STALENESS = 45
#: Slack for the emulator's request handling on a loaded machine.
MARGIN = 15.0


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, kernel_assembly: Path) -> Iterator[Emulator]:
    running = start_emulator(
        [
            "--cdk-out",
            str(kernel_assembly),
            "--no-synth",
            f"--organization-account={NEW_ACCOUNT}",
            f"--set={settings.POLICY_MAX_STALENESS_SECONDS}={MAX_STALENESS}",
            f"--set={settings.RATE_LIMIT_REQUESTS}=1000000",
            f"--set={settings.RATE_LIMIT_SESSION_REQUESTS}=100000",
        ],
        tmp_path_factory.mktemp("onboarding"),
    )
    yield running
    stop_emulator(running)


def _policy_object(emulator: Emulator) -> tuple[str, str]:
    [url] = [u for u in emulator.state["objects"] if u.endswith(f"/{POLICY_DOCUMENT_KEY}")]
    bucket, key = url.removeprefix("s3://").split("/", 1)
    return bucket, key


def _new_partner_session(emulator: Emulator) -> dict[str, str]:
    """A session of the in-organization kernel role, as a workload of the new account holds it."""
    in_org = emulator.partner("payments")["role_arn"]
    workload = emulator.workload(NEW_ACCOUNT, "newco-workload")
    return emulator.assume(in_org, f"{NEW_ACCOUNT}.onboarding", caller=workload)


def _credentials(emulator: Emulator, creds: dict[str, str]) -> Response:
    return emulator.call("GET", f"{emulator.state['vending_url']}/credentials?role=kernel-reader", creds)


def _onboarded(document: dict[str, Any]) -> dict[str, Any]:
    """The policy with the new partner and a rule that admits partners by attribute."""
    new = copy.deepcopy(document)
    new["version"] = "onboarding-1"
    payments = new["partners"]["payments"]
    new["partners"]["newco"] = {
        "account_id": NEW_ACCOUNT,
        "in_organization": True,
        "organization_id": payments["organization_id"],
        "attributes": {"tier": "gold"},
    }
    new["rules"].append(
        {
            "id": "gold-tier-reads",
            "effect": "allow",
            "partner_attributes": {"tier": ["gold"]},
            "roles": ["kernel-reader"],
            "max_duration": 3600,
        }
    )
    return new


def _lint(emulator: Emulator, url: str) -> subprocess.CompletedProcess[str]:
    """``kernel-access policy lint s3://...`` against the local S3, as an operator runs it."""
    admin = emulator.kernel_admin()
    env = {
        **os.environ,
        **admin,
        "AWS_ENDPOINT_URL": emulator.moto,
        "AWS_REGION": emulator.region,
        "AWS_DEFAULT_REGION": emulator.region,
    }
    return subprocess.run(
        [sys.executable, "-m", "kernel_access", "policy", "lint", url],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.5)


def test_a_new_partner_is_onboarded_by_a_new_object_version_and_a_bad_version_fails_closed(
    emulator: Emulator,
) -> None:
    s3 = emulator.client("s3")
    bucket, key = _policy_object(emulator)
    deployed = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    creds = _new_partner_session(emulator)
    pid = emulator.process.pid

    # IAM is enforced: an account outside the organization cannot even assume the in-org role.
    outsider = emulator.workload(OUTSIDE_ACCOUNT, "outsider-workload")
    with pytest.raises(ClientError) as refused_by_iam:
        emulator.assume(emulator.partner("payments")["role_arn"], f"{OUTSIDE_ACCOUNT}.x", caller=outsider)
    assert refused_by_iam.value.response["Error"]["Code"] == "AccessDenied"

    # Before: the account is no partner of the policy; the request is refused.
    before = _credentials(emulator, creds)
    assert before.status == 403, before.body
    assert before.json()["error_code"] in ("ACCESS_DENIED", "POLICY_DENY")

    # The operator writes a new version (linted first, as docs/policy-store.md says).
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(_onboarded(deployed)).encode())
    lint = _lint(emulator, f"s3://{bucket}/{key}")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "valid policy version 'onboarding-1'" in lint.stdout
    written = time.monotonic()

    # Within the cache period (plus slack) the new partner is admitted, by the attribute rule.
    admitted = _wait_for(
        lambda: (r := _credentials(emulator, creds)).status == 200 and r,
        DEFAULT_CACHE_SECONDS + MARGIN,
        "the new partner admitted",
    )
    assert time.monotonic() - written <= DEFAULT_CACHE_SECONDS + MARGIN
    access_key_id = admitted.json()["AccessKeyId"]
    assert emulator.process.pid == pid
    assert emulator.process.poll() is None  # no restart
    audit = emulator.scan(emulator.state["audit_table"])
    [record] = [i for i in audit if i.get("access_key_id", {}).get("S") == access_key_id]
    assert record["decision"]["S"] == "allow"
    assert record["partner"]["S"] == "newco"
    assert record["rule_id"]["S"] == "gold-tier-reads"
    assert record["policy_version"]["S"] == "onboarding-1"

    # A malformed version: the last good policy keeps deciding, then the service fails closed.
    good_version = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]
    assert good_version["IsLatest"]
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"version": "broken", "partners": ')
    assert _lint(emulator, f"s3://{bucket}/{key}").returncode == 1
    broken_at = time.monotonic()
    served_after_a_failed_refresh = _wait_for(
        lambda: (
            (h := emulator.call("GET", f"{emulator.state['vending_url']}/health", creds)).status == 200
            # Older than the cache period: a refresh was attempted since, and it failed.
            and h.json()["policy"]["age_seconds"] > DEFAULT_CACHE_SECONDS
            and h
        ),
        DEFAULT_CACHE_SECONDS + DEFAULT_RETRY_SECONDS + MARGIN,
        "a refresh of the malformed version failed while the last good policy still served",
    )
    assert served_after_a_failed_refresh.json()["policy"]["version"] == "onboarding-1"
    assert _credentials(emulator, creds).status == 200
    refused = _wait_for(
        lambda: (r := _credentials(emulator, creds)).status == 503 and r,
        DEFAULT_CACHE_SECONDS + MAX_STALENESS + MARGIN,
        "POLICY_LOAD_FAILED once the last good policy is older than the staleness bound",
    )
    assert refused.json()["error_code"] == "POLICY_LOAD_FAILED"
    assert time.monotonic() - broken_at <= DEFAULT_CACHE_SECONDS + MAX_STALENESS + MARGIN
    payments = emulator.partner("payments")["credentials"]
    assert _credentials(emulator, payments).json()["error_code"] == "POLICY_LOAD_FAILED"

    # Rollback: the previous version made current again; served within the retry interval.
    s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key, "VersionId": good_version["VersionId"]},
    )
    _wait_for(
        lambda: _credentials(emulator, creds).status == 200,
        DEFAULT_RETRY_SECONDS + MARGIN,
        "the restored version serves again",
    )
