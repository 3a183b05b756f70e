"""The credential-vending logic behind the vending API, as plain modules testable without Lambda.

- :mod:`.request` parses and validates query strings (before any AWS call);
- :mod:`.identity` reads the caller from the IAM authorizer context (and nowhere else);
- :mod:`.sts` names, tags and assumes the target-role session;
- :mod:`.codeartifact` mints and caches CodeArtifact tokens per (domain, owner, access, lifetime);
- :mod:`.config` reads the Lambda environment;
- :mod:`.service` runs parse → authorize → act → audit → respond for each route.
"""
