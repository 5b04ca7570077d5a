"""The database schema: ordered, versioned migrations (:mod:`.versions`) and the one runner
that applies them (:mod:`.runner`, ``autograph migrate``)."""
