"""Alert channels (console, JSON lines file, e-mail, Slack) and the dispatcher that retries a
failing channel with backoff without blocking the others."""
