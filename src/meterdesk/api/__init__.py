"""The usage API (SPEC section 6): an ASGI application served by `meterdesk serve` on uvicorn."""
