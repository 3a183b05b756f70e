"""kernel-access runtime: Lambda handlers, policy engine, refresh engine, kernel client and CLI.

This package must never import ``aws_cdk``: partner Lambdas install it alone
(``pip install kernel-access``) and get only boto3 and aws-lambda-powertools.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
