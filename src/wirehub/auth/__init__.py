"""Authentication: token verification and issuing, passwords and the accounts service."""
