"""Local stand-ins for the kernel account: a SigV4 verifier (``kernel_access.local.sigv4``) and the
local emulator of the vending API. Nothing here is deployed; it exists so partners and tests can run
the real client against a server that authenticates requests the way API Gateway's IAM authorizer
does.
"""
