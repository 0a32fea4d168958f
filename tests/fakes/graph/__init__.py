"""A Microsoft Graph test server (Exchange Online), checked against Graph v1.0 metadata."""
