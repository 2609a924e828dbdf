"""Who is acting: OIDC bearer tokens verified against an issuer's keys, the platform's roles, the development issuer.

Knows nothing of HTTP routes: the API asks it for a Principal and checks the roles a route declares.
"""
