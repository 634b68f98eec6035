"""Authentication, authorisation and limits for the API: keys, scopes, rate limits, audit."""
