"""Pure ASGI middleware around every request: observation, admission control, the shutdown cutoff."""
