"""The HTTP API: FastAPI app factory and thin routers. `aidc.api.schemas` is the wire format, shared with the client."""
