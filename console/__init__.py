"""The web UI: pages, templates, static files, template tags and the read models
that exist only for pages (dashboard, received mail, mailbox overview, support
report, charts, health). The top floor: it may import sync, mailboxes, profiles,
crm and web, and no app imports it."""
