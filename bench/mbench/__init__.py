"""bench/run's parts: processes, the remote side, the measurements, the report."""
