"""Brokers move events between gateway replicas; presence records who is in a channel."""
