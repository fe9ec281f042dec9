"""Fakes of external services for tests: real servers on loopback that speak each service's
real protocol (model providers' streaming APIs, S3), so the real client SDKs run."""
