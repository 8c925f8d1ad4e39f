"""The scoring worker: the Faust agent's handlers, its tables, identity, schedule, and the port to
the pure scoring core."""
