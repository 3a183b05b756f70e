"""Tests of the OIDC token exchange (issue 6)."""
