"""Who may spend what: client keys, authentication, rate limits and budgets."""
