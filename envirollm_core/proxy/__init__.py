"""The metering proxy: real use passed through byte for byte, each request recorded as a run, and a router."""
