"""Integrations with frameworks (imported only by those who use them)."""
