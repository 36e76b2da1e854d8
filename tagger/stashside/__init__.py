"""The Stash side: standard library only (it runs inside Stash's own Python, on the hook path)."""
