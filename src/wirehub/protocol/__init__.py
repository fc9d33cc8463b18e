"""The client protocol: frames, JSON codec and the per-connection session rules. No I/O here."""
