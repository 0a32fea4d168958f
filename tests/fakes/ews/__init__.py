"""An EWS test server (Exchange Server), checked against the EWS schema (messages.xsd / types.xsd)."""
