"""Adapters: all I/O lives here. Clients are created lazily, never at import."""
