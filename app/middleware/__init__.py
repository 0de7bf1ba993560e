"""Pure ASGI middleware around every request: observation (and what the shutdown cutoff leaves a request),
admission control, the browser guard."""
