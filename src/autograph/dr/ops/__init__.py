"""How operations run: resumable timed steps, locks (one operation per kind), background
jobs (``wait=false``), the in-process event bus (hooks) and the cross-process event journal."""
