"""Benchmarks of meterdesk against the physical limits of its databases: `python -m bench` (see bench/__main__.py)."""
