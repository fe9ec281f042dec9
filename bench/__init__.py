"""Benchmarks of Forge's hot paths (not tests): `make bench` / `python -m bench`."""
