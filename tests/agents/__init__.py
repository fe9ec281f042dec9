"""Tests of the Agents service."""
