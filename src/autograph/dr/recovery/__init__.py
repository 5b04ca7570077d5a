"""Recovery of the plan's scenarios: options, which backups to use (with fallbacks), restore,
service start in priority order, and the verification checks. Never imports the drill."""
