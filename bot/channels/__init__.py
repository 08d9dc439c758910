"""Channel adapters: each converts between its wire format and the engine's Inbound / the outbox."""
