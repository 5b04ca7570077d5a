"""A deterministic layered layout: longest-path layers, barycentre ordering, centred rows.

Pure functions: the same nodes and edges always give the same coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

LAYER_GAP = 80.0
NODE_GAP = 40.0


def text_width(text: str, font_size: float) -> float:
    """An estimate of a label's width in a sans-serif font (no font metrics needed)."""
    wide = sum(1 for ch in text if ch.isupper() or ch in "mwMW@%")
    return (len(text) * 0.56 + wide * 0.12) * font_size


def _acyclic(ids: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The edges without the back edges of a depth-first search in node order."""
    children: dict[str, list[str]] = {i: [] for i in ids}
    for source, target in pairs:
        if source != target:
            children[source].append(target)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    kept: list[tuple[str, str]] = []
    for root in ids:
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, index = stack.pop()
            if index < len(children[node]):
                stack.append((node, index + 1))
                child = children[node][index]
                if state.get(child) == 1:
                    continue  # back edge: ignored for ranking
                kept.append((node, child))
                if child not in state:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                state[node] = 2
    return kept


def layers(ids: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Nodes grouped by longest-path rank (cycles broken), each layer ordered to reduce
    crossings (barycentre of the previous layer, ties by first appearance)."""
    edges = _acyclic(ids, pairs)
    parents: dict[str, list[str]] = {i: [] for i in ids}
    indegree = dict.fromkeys(ids, 0)
    for source, target in edges:
        parents[target].append(source)
        indegree[target] += 1
    rank = dict.fromkeys(ids, 0)
    ready = [i for i in ids if indegree[i] == 0]
    children: dict[str, list[str]] = {i: [] for i in ids}
    for source, target in edges:
        children[source].append(target)
    while ready:
        node = ready.pop(0)
        for child in children[node]:
            rank[child] = max(rank[child], rank[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    grouped: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for node in ids:
        grouped[rank[node]].append(node)
    appearance = {node: index for index, node in enumerate(ids)}
    for depth in range(1, len(grouped)):
        previous = {node: index for index, node in enumerate(grouped[depth - 1])}

        def barycentre(node: str, previous: dict[str, int] = previous) -> tuple[float, int]:
            seen = [previous[p] for p in parents[node] if p in previous]
            return (sum(seen) / len(seen) if seen else float(len(previous)), appearance[node])

        grouped[depth].sort(key=barycentre)
    return grouped


def place(ids: Sequence[str], pairs: Sequence[tuple[str, str]],
          sizes: dict[str, tuple[float, float]], direction: str = "LR",
          ) -> dict[str, tuple[float, float]]:
    """Top-left coordinates for every node: layers left to right (``LR``) or top to bottom
    (``TB``), nodes of a layer stacked across and centred on the widest layer."""
    grouped = layers(ids, pairs)
    across = 1 if direction == "LR" else 0  # index into (width, height) along a layer
    along = 1 - across

    def extent(layer: list[str]) -> float:
        return sum(sizes[n][across] for n in layer) + NODE_GAP * (len(layer) - 1)

    widest = max((extent(layer) for layer in grouped), default=0.0)
    positions: dict[str, tuple[float, float]] = {}
    offset = 0.0
    for layer in grouped:
        depth = max(sizes[n][along] for n in layer)
        cursor = (widest - extent(layer)) / 2
        for node in layer:
            main = offset + (depth - sizes[node][along]) / 2
            positions[node] = (main, cursor) if direction == "LR" else (cursor, main)
            cursor += sizes[node][across] + NODE_GAP
        offset += depth + LAYER_GAP
    return positions
