"""YAML with a bounded cost: a size cap on the text and a node cap counted with aliases expanded.

`yaml.safe_load` builds an aliased value once and shares it, so a 342-byte file of nested aliases (the
"billion laughs") loads quickly, and then every copy of the config (a JSON round trip, a pydantic model)
expands it to gigabytes. `load_bounded` composes the node graph first (aliases still shared), counts
the nodes the fully expanded document would have, and refuses before constructing anything when that
count passes `MAX_NODES`; text longer than `MAX_BYTES` is refused before it is parsed. Configs, studies
and ``--set`` values are a few hundred nodes.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1 << 20  # 1 MiB: the largest study file in configs/ is ~3 KB
MAX_NODES = 100_000  # scalars, lists and mappings of the expanded document


class YAMLTooLargeError(ValueError):
    """A YAML text over the size or the expanded-node cap; the message names what and the cap."""


def check_size(n_bytes: int, what: str) -> None:
    """Refuse `n_bytes` of YAML above `MAX_BYTES` (call before reading a file: its size is enough)."""
    if n_bytes > MAX_BYTES:
        raise YAMLTooLargeError(f"{what} is {n_bytes / 2**20:.1f} MiB, over the {MAX_BYTES // 2**20} MiB cap for "
                                "YAML configs: a config is a few KB; split it, or put data in files it points to")


def _expanded_nodes(root: yaml.Node, limit: int) -> int:
    """Nodes of the document with every alias expanded, counted on the shared graph (stops past `limit`)."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:  # an alias inside its own anchor: infinitely large
            return limit + 1
        visiting.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        visiting.discard(key)
        sizes[key] = min(total, limit + 1)
        return sizes[key]

    return size(root)


def load_bounded(text: str, what: str = "YAML text") -> Any:
    """`yaml.safe_load(text)` refusing oversized text and alias bombs before constructing them.

    Raises:
        YAMLTooLargeError: over `MAX_BYTES`, over `MAX_NODES` once aliases are expanded, or nested deeper
            than Python's recursion allows.
        yaml.YAMLError: not valid YAML (as `yaml.safe_load` raises it).
    """
    check_size(len(text.encode("utf-8", "surrogatepass")), what)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_nodes(node, MAX_NODES)
        if n > MAX_NODES:
            raise YAMLTooLargeError(f"{what} expands to more than {MAX_NODES:,} YAML nodes once its aliases (*name) "
                                    "are expanded (an alias bomb?): write the values out, or use fewer aliases")
        return loader.construct_document(node)
    except RecursionError:
        raise YAMLTooLargeError(f"{what} is nested too deeply to read: flatten it") from None
    finally:
        loader.dispose()


__all__ = ["MAX_BYTES", "MAX_NODES", "YAMLTooLargeError", "check_size", "load_bounded"]
