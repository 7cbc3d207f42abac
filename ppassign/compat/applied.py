"""Which shims have been installed in this process (every `fix_*` installs at most once)."""

APPLIED = set()


def once(name):
    """True the first time `name` is seen; shims use it to stay idempotent."""
    if name in APPLIED:
        return False
    APPLIED.add(name)
    return True
