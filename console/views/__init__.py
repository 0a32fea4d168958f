"""The web UI's pages. Thin: each checks the role (web.roles), reads through
``web.roles.visible()`` and calls one service for anything it changes."""
