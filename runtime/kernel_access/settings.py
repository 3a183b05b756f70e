"""Names of the environment variables the Lambda handlers read.

The CDK constructs import these names when they set the function's environment, so the
contract between what is deployed and what runs has one definition.
"""

from __future__ import annotations

from typing import Final

#: DynamoDB table that receives one record per decision (append-only).
AUDIT_TABLE_NAME: Final = "KERNEL_ACCESS_AUDIT_TABLE"
#: DynamoDB table holding the per-partner and per-session fixed-window counters (items expire by TTL).
RATE_LIMIT_TABLE_NAME: Final = "KERNEL_ACCESS_RATE_LIMIT_TABLE"
#: DynamoDB table holding revoked callers and partners.
REVOCATION_TABLE_NAME: Final = "KERNEL_ACCESS_REVOCATION_TABLE"
#: S3 bucket (versioned) holding the configuration documents the Lambdas decide with.
CONFIG_BUCKET: Final = "KERNEL_ACCESS_CONFIG_BUCKET"
#: Key, in ``CONFIG_BUCKET``, of the vending policy document (JSON).
POLICY_OBJECT_KEY: Final = "KERNEL_ACCESS_POLICY_OBJECT_KEY"
#: Seconds the last good document (policy, exchange configuration) may serve when it cannot be loaded.
POLICY_MAX_STALENESS_SECONDS: Final = "KERNEL_ACCESS_POLICY_MAX_STALENESS_SECONDS"
#: JSON object mapping a target role name (as requested by callers) to its ARN.
TARGET_ROLES: Final = "KERNEL_ACCESS_TARGET_ROLES"
#: Requests allowed per partner per window, and the window length in seconds.
RATE_LIMIT_REQUESTS: Final = "KERNEL_ACCESS_RATE_LIMIT_REQUESTS"
#: Requests allowed per session (caller ARN) per window; never above the partner's limit.
RATE_LIMIT_SESSION_REQUESTS: Final = "KERNEL_ACCESS_RATE_LIMIT_SESSION_REQUESTS"
RATE_LIMIT_WINDOW_SECONDS: Final = "KERNEL_ACCESS_RATE_LIMIT_WINDOW_SECONDS"
#: Days an audit record is kept before DynamoDB's TTL removes it.
AUDIT_RETENTION_DAYS: Final = "KERNEL_ACCESS_AUDIT_RETENTION_DAYS"
#: S3 bucket (Object Lock, compliance mode) the audit archive Lambda writes the table's stream to.
AUDIT_ARCHIVE_BUCKET: Final = "KERNEL_ACCESS_AUDIT_ARCHIVE_BUCKET"
#: Roles the vending Lambda assumes to mint CodeArtifact tokens (read-only / publish).
CODEARTIFACT_READER_ROLE_ARN: Final = "KERNEL_ACCESS_CODEARTIFACT_READER_ROLE_ARN"
CODEARTIFACT_PUBLISHER_ROLE_ARN: Final = "KERNEL_ACCESS_CODEARTIFACT_PUBLISHER_ROLE_ARN"
#: Account that owns the CodeArtifact domain.
CODEARTIFACT_DOMAIN_OWNER: Final = "KERNEL_ACCESS_CODEARTIFACT_DOMAIN_OWNER"
#: SSM SecureString parameter holding the HMAC key for token fingerprints in audit records
#: (optional: without it records carry a plain SHA-256 fingerprint).
AUDIT_HMAC_KEY_PARAMETER: Final = "KERNEL_ACCESS_AUDIT_HMAC_KEY_PARAMETER"
#: Name of the kernel-access roles (callers come from sessions of these roles). The external one is
#: a base name: each external partner's role is ``<base>-<partner>``.
IN_ORG_ROLE_NAME: Final = "KERNEL_ACCESS_IN_ORG_ROLE_NAME"
EXTERNAL_ROLE_NAME: Final = "KERNEL_ACCESS_EXTERNAL_ROLE_NAME"
#: The kernel account and partition the function runs in: a caller ARN of any other account or
#: partition is no partner (unset = nobody is a partner: fail closed).
KERNEL_ACCOUNT_ID: Final = "KERNEL_ACCESS_KERNEL_ACCOUNT_ID"
PARTITION: Final = "KERNEL_ACCESS_PARTITION"

# --- token exchange (OIDC) ---
#: Key, in ``CONFIG_BUCKET``, of the exchange configuration (central issuer rules + trust policies).
EXCHANGE_CONFIG_OBJECT_KEY: Final = "KERNEL_ACCESS_EXCHANGE_CONFIG_OBJECT_KEY"
#: DynamoDB table recording accepted token ``jti`` values (replay protection).
REPLAY_TABLE_NAME: Final = "KERNEL_ACCESS_REPLAY_TABLE"
#: DynamoDB table of issued-token fingerprints (list / revoke).
ISSUED_TOKENS_TABLE_NAME: Final = "KERNEL_ACCESS_ISSUED_TOKENS_TABLE"
