"""Authentication: token verification and issuing (accounts come later)."""
