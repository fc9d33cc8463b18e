"""The package version, in a module of its own: the server layer reports it (the ``connect``
reply, ``/metrics``) without importing the package facade, which imports the composition root."""

__all__ = ["__version__"]

__version__ = "0.1.0"
