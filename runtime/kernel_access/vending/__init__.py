"""The credential-vending logic behind the vending API, as plain modules testable without Lambda.

- :mod:`.context` parses the event, once, into the request context the service takes;
- :mod:`.identity` reads the caller from the IAM authorizer context (and nowhere else);
- :mod:`.request` validates each route's query string (before any AWS call);
- :mod:`.sts` names, tags and assumes the target-role session;
- :mod:`.codeartifact` mints and caches CodeArtifact tokens per (domain, owner, access, lifetime);
- :mod:`.config` reads the Lambda environment;
- :mod:`.service` runs authorize → act → audit → respond for each route.
"""
