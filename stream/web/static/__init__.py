"""Files the worker's web server serves as they are (the collector's JavaScript snippet)."""
