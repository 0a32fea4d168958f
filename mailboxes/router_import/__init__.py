"""Email Router migration: the routers' files in, server-side sync profiles and
mailboxes out. Faces (wizard, API, command) call the functions of ``service``."""
