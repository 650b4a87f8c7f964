"""Typed, frozen settings read once from TOML, the environment and the command line (standard library only)."""
