"""Shipped reference data (sources in README.md here), installed as the package `envirollm_core.data`.

A regular package, so that `importlib.resources` finds it in a wheel and in an editable install alike; the code
reads it through `envirollm_core.paths.data_file`."""
