"""One module per protocol: bytes in, bytes out, nothing about the CRM.

Connectors import nothing of serversync's but ``sync.errors`` and this package,
take a :class:`~sync.connectors.base.ServerSettings` and raise only
``TransientError``, ``PermanentError`` or ``MessageError``.
"""
