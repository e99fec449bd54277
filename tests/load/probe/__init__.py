"""Test-only app for the load tests' server: counts ``order_paid`` in a database row."""
