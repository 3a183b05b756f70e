"""Lambda handlers. Each module is a thin adapter from an API Gateway event to plain runtime code."""
