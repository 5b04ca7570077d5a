"""Proven restorable, continuously: scheduled deep verification of every backup kind (a real
restore into scratch resources, compared with the live data) and scheduled sandbox drills.

- :mod:`.models` — what a proof is, and its history (``HOME/dr/proofs.jsonl``);
- :mod:`.scratch` — recognisable scratch names, the disk guard, leftovers cleaned at start;
- :mod:`.database`, :mod:`.cluster`, :mod:`.objects` — one restore test per kind;
- :mod:`.run` — picks the newest backup, guards, runs, records (manifest and history);
- :mod:`.schedule` — when each runs, derived from the catalog and the drill history;
- :mod:`.alerts` — the monitor's rules over that history; :mod:`.status` — what ``dr status``
  and ``/metrics`` show of it.
"""
