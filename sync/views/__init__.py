"""The web UI's pages. Thin: each checks the role (crm.roles), reads through
``crm.api_base.visible()`` and calls one service for anything it changes."""
