"""Test support that ships with meterdesk: stand-ins for outside services, such as a local Stripe API server."""
