"""Shared fixtures. Feature-specific fixtures live in tests/fixtures/ and the test modules."""
