"""Forge REST gateway: Envoy gRPC-JSON transcoder config (envoy.yaml) and its launcher.

Use ``from gateway.launcher import EnvoyConfig, EnvoyProcess, render_config``. Nothing is
re-exported here so that ``python -m gateway.launcher`` runs without a double import.
"""
