#!/usr/bin/env python3
"""CDK app: the kernel stack and one stack per partner, from cdk.json's "kernel-access" context."""

from __future__ import annotations

from kernel_access_cdk.app import build_app

if __name__ == "__main__":
    build_app().synth()
