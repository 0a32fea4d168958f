from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "profiles"
    verbose_name = "Email server profiles"

    def ready(self) -> None:
        from profiles import crypto

        # Refuse to start with a malformed key rather than fail on first use.
        crypto.key_set()
