"""Channel adapters: each converts between its wire format and the engine's Inbound / the outbox."""

from bot.channels import aiogram_schemas

aiogram_schemas.install()
