"""forge.testing.v1.TestingService: plumbing checks, registered only when enabled."""
