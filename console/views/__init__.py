"""The web UI's pages. Thin: each checks the role (web.roles), reads through
``web.api_base.visible()`` and calls one service for anything it changes."""
