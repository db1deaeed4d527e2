"""Hardware and process sampling, energy sources."""
