"""Shared web plumbing, not a domain app (no models): who may see and change what
(web.roles), the API's role-scoped base classes (web.api_base, web.api_parsers,
web.api_filters) and the admin site
that follows those roles (web.admin_site).

It sits just above ``crm.models`` (the CRM users and groups the roles are about)
and below every app's API, admin and pages, which import it."""
