"""Named points in the engine where nothing may be lost if the process dies there.

Product code marks such a point with ``checkpoint("after_smtp_data")``, which
does nothing: no setting, no environment variable, no test code is read here.
The crash tests' harness (tests/harness/crashing_worker.py) installs a hook in
the worker it starts that kills the process, as a power cut would, at the point
the test names.

The points: ``after_smtp_data``, in ``sync.outgoing``, right after the server
accepted an email's DATA and before the email is recorded Sent.
"""

from __future__ import annotations

from collections.abc import Callable

POINTS = frozenset({"after_smtp_data"})

_hook: Callable[[str], None] | None = None


def checkpoint(name: str) -> None:
    """The engine reached point ``name``: call the installed hook, if any."""
    if _hook is not None:
        _hook(name)


def install(hook: Callable[[str], None] | None) -> None:
    """Call ``hook`` with each point's name as the engine reaches it (None: no hook)."""
    global _hook
    _hook = hook
