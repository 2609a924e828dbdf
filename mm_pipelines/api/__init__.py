"""The asset service (`mm api`): one FastAPI app, one router per domain; routes stay thin and call the domains."""
