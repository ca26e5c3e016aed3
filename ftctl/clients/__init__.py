"""Load clients: the built-in (legacy-compatible) HTTP client and aiperf."""
