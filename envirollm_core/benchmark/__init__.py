"""The benchmark engine: presets, phases, the runner, jobs, the load sweep and its client."""
