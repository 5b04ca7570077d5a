"""Deterministic text-to-diagram: a small line grammar turned into a laid-out canvas.

No model weights: the same prompt always gives the same diagram. One statement per line
(or separated by ``;``); ``#`` starts a comment; list bullets (``-``, ``*``, ``1.``) are
ignored. Statements:

- chains ``User -> API Gateway -> Database`` (also ``→``, ``=>``, ``-->``); ``<->`` draws
  arrows both ways, ``--`` none; a trailing ``: label`` labels the chain's edges;
- fan-outs ``API: Auth, Diagrams and Storage`` (an edge from the left to each name);
- sentences ``Web app calls API`` / ``API reads from Cache and DB`` (the verb is the label);
- a bare name is a node on its own.

Shapes are guessed from names: databases are cylinders, people and clients ellipses,
questions diamonds, queues rounded boxes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from autograph.errors import InvalidInput
from autograph.services.svg.layout import place, text_width

MAX_PROMPT = 20_000
MAX_NODES = 500
MAX_EDGES = 2000
MAX_NAME = 80

_ARROW = re.compile(r"\s*(<->|<-->|-->|->|=>|→|⟶|--)\s*")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_VERBS = ("connects to", "sends data to", "sends to", "talks to", "calls", "uses",
          "depends on", "reads from", "writes to", "queries", "publishes to",
          "subscribes to", "notifies", "stores in", "forwards to", "routes to")
_SENTENCE = re.compile(r"^(?P<src>.+?)\s+(?P<verb>" + "|".join(re.escape(v) for v in _VERBS)
                       + r")\s+(?P<dst>.+)$", re.IGNORECASE)
_LIST_SPLIT = re.compile(r"\s*(?:,|;|\band\b|&)\s*", re.IGNORECASE)
_SHAPE_HINTS = (
    ("cylinder", re.compile(r"\b(database|db|postgres\w*|mysql|sql|mongo\w*|storage|"
                            r"s3|minio|bucket|redis|cache|warehouse)\b", re.IGNORECASE)),
    ("ellipse", re.compile(r"\b(user|users|client|customer|browser|admin|actor|person)\b",
                           re.IGNORECASE)),
    ("rounded", re.compile(r"\b(queue|topic|stream|kafka|bus|broker)\b", re.IGNORECASE)),
)


@dataclass
class Graph:
    """Nodes in order of first mention (case-insensitive names) and labelled edges."""

    labels: dict[str, str] = field(default_factory=dict)  # key -> first spelling
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # src, dst, label, arrow

    def node(self, name: str) -> str:
        """The key of a node named ``name`` (created on first mention)."""
        clean = " ".join(name.strip().strip("\"'`").split())[:MAX_NAME]
        if not clean:
            raise InvalidInput("a statement has an empty name")
        key = clean.casefold()
        if key not in self.labels:
            if len(self.labels) >= MAX_NODES:
                raise InvalidInput(f"the prompt names more than {MAX_NODES} components")
            self.labels[key] = clean
        return key

    def edge(self, source: str, target: str, label: str = "", arrow: str = "end") -> None:
        """Add an edge between two names (duplicates and self-loops are dropped)."""
        src, dst = self.node(source), self.node(target)
        if src == dst or any(e[:2] == (src, dst) for e in self.edges):
            return
        if len(self.edges) >= MAX_EDGES:
            raise InvalidInput(f"the prompt makes more than {MAX_EDGES} connections")
        self.edges.append((src, dst, label.strip()[:MAX_NAME], arrow))


def _names(text: str) -> list[str]:
    return [part for part in _LIST_SPLIT.split(text) if part.strip()]


def _chain(graph: Graph, statement: str) -> None:
    label = ""
    parts = _ARROW.split(statement)
    tail = parts[-1]
    if ":" in tail:
        parts[-1], label = (piece.strip() for piece in tail.split(":", 1))
    names, arrows = parts[0::2], parts[1::2]
    for index, arrow in enumerate(arrows):
        style = {"<->": "both", "<-->": "both", "--": "none"}.get(arrow, "end")
        for source in _names(names[index]):
            for target in _names(names[index + 1]):
                graph.edge(source, target, label, style)


def parse_statement(graph: Graph, statement: str) -> None:
    """Add one statement's nodes and edges to ``graph``; InvalidInput for an empty name."""
    statement = _BULLET.sub("", statement).strip().rstrip(".")
    if not statement:
        return
    if _ARROW.search(statement):
        _chain(graph, statement)
        return
    sentence = _SENTENCE.match(statement)
    if sentence:
        for target in _names(sentence["dst"]):
            graph.edge(sentence["src"], target, sentence["verb"].lower())
        return
    if ":" in statement:
        source, targets = statement.split(":", 1)
        if not targets.strip():
            graph.node(source)
        for target in _names(targets):
            graph.edge(source, target)
        return
    for name in _names(statement):
        graph.node(name)


def parse_prompt(prompt: str) -> Graph:
    """The graph a prompt describes; InvalidInput when it is too long or names nothing."""
    if len(prompt) > MAX_PROMPT:
        raise InvalidInput(f"prompt longer than {MAX_PROMPT} characters")
    graph = Graph()
    for line in prompt.splitlines():
        for statement in line.split("#", 1)[0].split(";"):
            parse_statement(graph, statement)
    if not graph.labels:
        raise InvalidInput("the prompt names no components (try 'User -> API -> Database')")
    return graph


def shape_for(name: str) -> str:
    """The node shape a name suggests (see the module docstring)."""
    if name.endswith("?"):
        return "diamond"
    for shape, pattern in _SHAPE_HINTS:
        if pattern.search(name):
            return shape
    return "rect"


def generate_canvas(prompt: str, direction: str = "LR") -> dict[str, Any]:
    """Parse ``prompt`` and lay it out: a canvas with ``nodes`` (positioned) and ``edges``.

    Raises InvalidInput (see ``parse_prompt``).
    """
    graph = parse_prompt(prompt)
    keys = list(graph.labels)
    ids = {key: f"n{index + 1}" for index, key in enumerate(keys)}
    sizes = {ids[k]: (max(120.0, round(text_width(graph.labels[k], 14.0)) + 32.0), 56.0)
             for k in keys}
    pairs = [(ids[s], ids[t]) for s, t, _label, _arrow in graph.edges]
    positions = place([ids[k] for k in keys], pairs, sizes, direction)
    nodes = [{"id": ids[k], "label": graph.labels[k], "shape": shape_for(graph.labels[k]),
              "x": positions[ids[k]][0], "y": positions[ids[k]][1],
              "width": sizes[ids[k]][0], "height": sizes[ids[k]][1]} for k in keys]
    edges = [{"id": f"e{index + 1}", "source": ids[s], "target": ids[t], "label": label,
              "arrow": arrow} for index, (s, t, label, arrow) in enumerate(graph.edges)]
    return {"version": 1, "direction": direction, "nodes": nodes, "edges": edges,
            "generator": {"name": "autograph-rules", "version": 1}}
