"""Running the gateway: uvicorn, the HTTP protocol, each worker's heap, the container health check."""
