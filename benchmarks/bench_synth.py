"""Synth time of the kernel stack at 10, 100, 1,000 and 5,000 partners, limits check on and off.

What grows with the number of partners in the kernel account is the kernel stack: the partner map
of the vending policy (an S3 object, built and checked at synth) and one role per external
partner (the in-organization trust statement is the same for any number), those roles spread over
up to 32 nested stacks (``ExternalPartnerRoles-<nn>``, by a hash of the partner name). That is what
these rows measure: the kernel stack and its nested stacks, of a generated configuration (five in
six in-organization, one in six external — 1,000 partners give about the 1,000 + 200 mix an
organization-scale kernel serves, 5,000 give 4,167 + 833; the example's target roles and rules
naming every partner), synthesized with the cdk-nag packs, as a ratio against 10 partners.
Goal: the ratio stays well under the size ratio (the kernel stack's cost is mostly fixed).

Partner stacks are not synthesized at 100 and more: with a ``partner_rollout`` StackSet the
in-organization partners have no stack of their own at all (one StackSet template in one rollout
stack serves every account of the admitted OUs), and the ``KernelAccessPartner-<name>`` stacks that
remain (external partners, small setups) are each the same small stack, linear by construction. One
row reports the synth time per partner stack, measured on the 10-partner configuration.

With the limits check on, a configuration whose templates break an AWS limit fails synth: the row
says how many findings and which rules (the time to that verdict is still the synth time). The
vending policy is an S3 object (``ConfigDocumentSize``: 5 MiB), so its partner map no longer fails
synth at 100, 1,000 or 5,000 partners the way the SSM parameter it replaced did.

Each row is the median of three synths (one at 5,000 partners, which takes several seconds), after
one unmeasured warm-up synth that loads the jsii runtime, each in a fresh temporary directory; the
partner-stack row is one synth of each kind.
"""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Result

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10, 100, 1_000, 5_000)
#: Synths per row (the median is reported): a single synth on a shared machine is too noisy.
REPEAT = 3
#: Sizes from which one synth per row is enough (each takes several seconds; noise is relatively small).
SINGLE_RUN_FROM = 5_000


def _context(partners: int) -> dict[str, Any]:
    context: dict[str, Any] = copy.deepcopy(json.loads((ROOT / "cdk.json").read_text())["context"])
    config = context["kernel-access"]
    generated = []
    for i in range(partners):
        in_org = i % 6 != 5
        entry: dict[str, Any] = {
            "name": f"partner-{i:04d}",
            "account_id": f"{500_000_000_000 + i:012d}",
            "in_organization": in_org,
            "region": "us-east-1",
        }
        if not in_org:
            entry["external_id"] = f"ka-{i:04d}-7f3c9e2a4b6d48e1a0c5d9b2e8f1a3c7"
        generated.append(entry)
    config["partners"] = generated
    names = [p["name"] for p in generated]
    # Keep the example's rules, each naming every generated partner (rules name partners that exist).
    for rule in config["policy"]["rules"]:
        if "partners" in rule:
            rule["partners"] = names
    config.pop("exchange", None)  # its trust policies name example partners; not what is measured
    return context


def _synth(partners: int, *, limits: bool, partner_stacks: bool = False) -> tuple[float, list[str]]:
    from aws_cdk import App
    from kernel_access_cdk.app import CONTEXT_KEY
    from kernel_access_cdk.config import load_config
    from kernel_access_cdk.limits import PLUGIN_NAME, register_limits
    from kernel_access_cdk.nag import register_nag
    from kernel_access_cdk.stacks import KernelAccountStack, build_stacks, kernel_stack_id

    context = _context(partners)
    with tempfile.TemporaryDirectory() as outdir:
        started = time.perf_counter()
        app = App(context=context, outdir=outdir, analytics_reporting=False)
        config = load_config(context[CONTEXT_KEY])
        if partner_stacks:
            build_stacks(app, config)
        else:
            KernelAccountStack(app, kernel_stack_id(), config=config)
        register_nag(app)
        if limits:
            register_limits(app, config.limits)
        try:
            app.synth()
        except Exception as error:
            report_path = Path(outdir) / "validation-report.json"
            if not report_path.exists():
                # aws-cdk-lib's own checks (e.g. 500 resources per stack) fail before any plugin.
                if "TooManyResourcesInStack" in str(error):
                    return time.perf_counter() - started, ["TooManyResourcesInStack (aws-cdk-lib)"]
                raise
            report = json.loads(report_path.read_text())
            elapsed = time.perf_counter() - started
            rules = [
                v["ruleName"]
                for p in report["pluginReports"]
                if p["pluginName"] == PLUGIN_NAME
                for v in p["violations"]
            ]
            others = [
                p["pluginName"]
                for p in report["pluginReports"]
                if p["pluginName"] != PLUGIN_NAME and p["conclusion"] != "success"
            ]
            if not rules or others:
                raise
            return elapsed, rules
        return time.perf_counter() - started, []


def _nested_note(size: int) -> str:
    """How many nested stacks the size's external partners are spread over (empty ones are not built)."""
    from kernel_access_cdk.roles import external_role_shard

    external = [f"partner-{i:04d}" for i in range(size) if i % 6 == 5]
    shards = len({external_role_shard(name) for name in external})
    return f"{len(external):,} external partners in {shards} nested stack(s)" if external else ""


def _verdict(findings: list[str]) -> str:
    if not findings:
        return "limits check passed"
    rules = sorted({f.split("[", 1)[0] for f in findings})
    shown = ", ".join(f.replace("[", " ").rstrip("]") for f in findings[:3])
    return f"limits check FAILED synth: {len(findings)} finding(s) ({', '.join(rules)}): {shown}"


def run() -> list[Result]:
    _synth(SIZES[0], limits=False)  # warm-up: jsii runtime and module loading
    results: list[Result] = []
    for limits in (False, True):
        label = "on" if limits else "off"
        baseline: float | None = None
        for size in SIZES:
            runs = [_synth(size, limits=limits) for _ in range(1 if size >= SINGLE_RUN_FROM else REPEAT)]
            seconds, findings = statistics.median(r[0] for r in runs), runs[0][1]
            baseline = baseline or seconds
            results.append(
                Result(
                    f"synth: kernel stack, {size:,} partners, limits {label}",
                    seconds,
                    baseline,
                    "s",
                    f"ratio well under {size // SIZES[0]} (baseline: {SIZES[0]} partners)"
                    if size != SIZES[0]
                    else "baseline",
                    note="; ".join(
                        n for n in (_verdict(findings) if limits else "", _nested_note(size)) if n
                    ),
                )
            )
    kernel_only, _ = _synth(SIZES[0], limits=False)
    with_partners, _ = _synth(SIZES[0], limits=False, partner_stacks=True)
    per_stack = (with_partners - kernel_only) / SIZES[0]
    results.append(
        Result(
            f"synth: one partner stack (from {SIZES[0]} partners)",
            per_stack,
            kernel_only,
            "s",
            "a fraction of the kernel stack (baseline: kernel stack, 10 partners)",
            note=f"{SIZES[-1]:,} partner stacks ≈ {per_stack * SIZES[-1]:.0f} s (one stack per partner)",
        )
    )
    return results
