"""The forwarding path: the route table, dispatch, validation, the upstream exchange, streams and usage."""
