"""The metering proxy: real use passed through byte for byte, each request recorded as a run, and a router."""

DEFAULT_LISTEN = "127.0.0.1:11435"  # loopback: real use is private, and the proxy is no gateway
