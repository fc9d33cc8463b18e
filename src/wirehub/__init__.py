"""wirehub: a realtime WebSocket gateway speaking Centrifugo's client protocol v2."""

__version__ = "0.1.0"
