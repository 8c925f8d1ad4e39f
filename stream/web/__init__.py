"""HTTP on the worker's web server: the collector, the read API, the lead API, auth, static
files."""
