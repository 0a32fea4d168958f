"""The tags the importer understands, with the aliases it accepts.

Children of a ``ProviderConfiguration`` are matched case-insensitively (as the
Email Router does), by local name (a namespace prefix changes nothing). Every
name here is either confirmed by Microsoft's documentation or inferred from
CRM 4.0/2011-era files; docs/email-router-migration.md says which. An entry
read through an alias says so in the review, and every other tag is listed
there verbatim as not understood.
"""

from __future__ import annotations

# canonical name -> the names it is written as (lower-case; the first is the canonical one)
ENTRY_TAGS: dict[str, tuple[str, ...]] = {
    "EmailAddress": ("emailaddress",),
    "UserId": ("userid", "systemuserid"),
    "QueueId": ("queueid",),
    "CrmServerUrl": ("crmserverurl", "crmserver", "crmurl", "organizationurl"),
    "ProviderAssembly": ("providerassembly",),
    "ProviderClass": ("providerclass", "providertype"),
    "Direction": ("direction",),
    "EmailServerUrl": ("emailserverurl", "emailserver", "emailserverlocation"),
    "EmailServerType": ("emailservertype", "servertype"),
    "EmailProtocol": ("emailprotocol", "protocol"),
    "EmailPort": ("emailport", "emailserverport"),
    "EmailUseSSL": ("emailusessl", "usessl", "emailssl"),
    "EmailAuthMode": ("emailauthmode", "emailauthenticationmode", "emailauthenticationtype"),
    "EmailUser": ("emailuser", "emailusername"),
    "EmailPassword": ("emailpassword",),
    "CrmAuthMode": ("crmauthmode",),
    "CrmUser": ("crmuser", "crmusername"),
    "CrmPassword": ("crmpassword",),
    "ProfileName": ("profilename",),
    "IsForwardMailbox": ("isforwardmailbox",),
    "DeleteEmails": ("deleteemails",),
    "ThresholdDateTime": ("thresholddatetime",),
    "MoveEmails": ("moveemails",),
    "BatchSize": ("batchsize",),
    "CacheCapacity": ("cachecapacity",),
    "IdentityHash": ("identityhash",),
    "MessageExpiry": ("messageexpiry",),
}
# Spellings Microsoft documents (each canonical name, and EmailServer for EmailServerUrl):
# reading them needs no note in the review.
CONFIRMED_SPELLINGS = frozenset({name.lower() for name in ENTRY_TAGS} | {"emailserver"})
BY_WRITTEN_NAME = {written: canonical for canonical, names in ENTRY_TAGS.items() for written in names}

# Tags that may appear more than once in an entry (one or more CRM ids).
REPEATABLE = frozenset({"UserId", "QueueId"})
# Never shown anywhere, not even as "present": their values are encrypted secrets.
SECRET_TAGS = frozenset({"EmailPassword", "CrmPassword"})
# Understood, and with nothing to become in server-side synchronization.
ROUTER_ONLY = {
    "CrmAuthMode": "how the router signed in to the CRM; serversync is the CRM",
    "CrmUser": "the account the router signed in to the CRM with; serversync is the CRM",
    "CrmPassword": "the router's CRM password; serversync is the CRM",
    "MoveEmails": "the router's own handling of processed mail",
    "BatchSize": "the router's own batching",
    "CacheCapacity": "the router's own cache",
    "IdentityHash": "the router's own key for an entry's state; used only to match SystemState thresholds",
    "MessageExpiry": "the router's own retry window",
}

# The Microsoft.Crm.Tools.EmailAgent.SystemState.xml file (its layout is inferred).
STATE_TAGS: dict[str, tuple[str, ...]] = {
    "ThresholdDate": ("thresholddate", "thresholddatetime"),
    "StateXML": ("statexml",),
    "EmailAddress": ("emailaddress",),
    "UserId": ("userid", "systemuserid"),
    "QueueId": ("queueid",),
    # The provider property of the same name in the agent file: which entry a state belongs to.
    "IdentityHash": ("identityhash",),
}
STATE_BY_WRITTEN_NAME = {written: canonical for canonical, names in STATE_TAGS.items() for written in names}


def local_name(tag: object) -> str:
    """``{urn:x}Name`` -> ``Name``: a namespace changes nothing."""
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text.split(":")[-1]


def verbatim(tag: object) -> str:
    """A tag as written, its namespace (if any) spelled out: ``<Name xmlns="urn:x">``."""
    text = str(tag)
    if text.startswith("{"):
        namespace, name = text[1:].split("}", 1)
        return f'<{name} xmlns="{namespace}">'
    return f"<{text}>"
