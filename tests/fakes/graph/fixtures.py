"""Pytest fixtures for the Graph test server (registered from tests/conftest.py)."""
