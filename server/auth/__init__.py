"""forge.auth.v1.AuthService: accounts, sessions, API keys, roles, audit log."""
