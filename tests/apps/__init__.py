"""Handler apps that integration tests load with ``wirehub serve --app``."""
