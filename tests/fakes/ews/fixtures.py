"""Pytest fixtures for the EWS test server (registered from tests/conftest.py)."""
