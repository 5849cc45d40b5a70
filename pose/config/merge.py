"""Merging YAML files and ``KEY VALUE`` overrides into the defaults, with yacs semantics.

``defaults <- YAML file <- KEY VALUE overrides``, validated (:mod:`pose.config.validate`) and frozen.
Every error is a one-line :class:`~pose.errors.ConfigError` naming the file (or the override) and the
key; beyond yacs, leaf values are type-checked and coerced losslessly (see :func:`_coerce`).
"""
import ast
import difflib
import os
from typing import Any, Optional, Sequence

import yaml
from yacs.config import CfgNode as CN

from pose.config.defaults import get_default_config
from pose.config.validate import validate_config
from pose.errors import ConfigError


def load_config(path, overrides: Sequence = ()) -> CN:
    """Defaults <- YAML file <- ``KEY VALUE`` overrides, validated and frozen.

    Args:
        path: YAML file in the official HRNet layout (or a delta of it).
        overrides: flat list ``["TRAIN.LR", "0.0005", "TEST.FLIP_TEST", "False", ...]`` as given on a
            command line; string values are parsed as Python literals where possible (yacs rules).

    Raises:
        ConfigError: missing file, YAML syntax error, unknown key, wrong type, odd override list or a
            violated invariant; the one-line message names the file (or the override) and the key.
    """
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; expected a YAML file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file ({type(e).__name__}); expected a readable "
                          "UTF-8 YAML file") from None
    return _build(text, path, overrides)


def config_from_yaml_text(text: str, source: str = "<yaml text>", overrides: Sequence = ()) -> CN:
    """Like :func:`load_config` for YAML text (e.g. the ``config_yaml`` stored in a checkpoint)."""
    return _build(text, source, overrides)


def config_to_yaml(cfg: CN) -> str:
    """The full config as YAML text in schema order; ``config_from_yaml_text`` reads it back equal."""
    return yaml.safe_dump(_to_plain(cfg), sort_keys=False, default_flow_style=None)


def with_overrides(cfg: CN, overrides: Sequence, source: str = "config") -> CN:
    """A new frozen config: ``cfg`` with ``KEY VALUE`` overrides applied and validated (``cfg`` unchanged)."""
    overrides = list(overrides)
    if not overrides:
        return cfg
    return _build(config_to_yaml(cfg), source, overrides)


def _build(text: str, source: str, overrides: Sequence) -> CN:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: YAML syntax error{_yaml_position(e)}: "
                          f"{_one_line(getattr(e, 'problem', None) or e)}; expected valid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level is a {type(data).__name__}; "
                          "expected a mapping of config keys")
    cfg = get_default_config()
    _merge_tree(cfg, data, source, "")
    overrides = list(overrides)
    if overrides:
        _merge_overrides(cfg, overrides)
        source = f"{source} + overrides"
    validate_config(cfg, source)
    cfg.freeze()
    return cfg


def _merge_tree(node: CN, data: dict, source: str, prefix: str) -> None:
    """Merge ``data`` into ``node`` in place with yacs semantics (unknown keys rejected except under a
    new_allowed node such as MODEL.EXTRA), type-checking and coercing every leaf (see :func:`_coerce`)."""
    for key, raw in data.items():
        full_key = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigError(f"{source}: key {full_key!r} is a {type(key).__name__}; expected a string key")
        value = _decode(raw)
        if key not in node:
            if not node.is_new_allowed():
                raise ConfigError(f"{source}: unknown config key {full_key}{_did_you_mean(key, node)}")
            # yacs: a new key takes the decoded value as is; a mapping becomes a plain (closed) node.
            node[key] = CN(_free_tree(value, source, full_key)) if isinstance(value, dict) else \
                _free_tree(value, source, full_key)
            continue
        current = node[key]
        if isinstance(current, CN):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {full_key} is a {type(value).__name__} ({value!r}); expected "
                                  f"a section with keys {sorted(current)}")
            _merge_tree(current, value, source, full_key + ".")
        else:
            node[key] = _coerce(value, current, raw, f"{source}: {full_key}")


def _free_tree(value: Any, source: str, full_key: str) -> Any:
    """A new value under a new_allowed node (MODEL.EXTRA): only yacs' valid leaf types are checked."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{source}: key {full_key}.{k!r} is a {type(k).__name__}; "
                                  "expected a string key")
            _free_tree(v, source, f"{full_key}.{k}")
        return value
    _check_leaf_type(value, f"{source}: {full_key}")
    return value


def _merge_overrides(cfg: CN, overrides: list) -> None:
    if len(overrides) % 2:
        raise ConfigError(f"overrides: {len(overrides)} items {overrides!r}; expected KEY VALUE pairs "
                          "(an even number of items)")
    for key, raw in zip(overrides[0::2], overrides[1::2]):
        where = f"override {key}"
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}: key {key!r}; expected a dotted config key such as TRAIN.LR")
        node = cfg
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, CN) or part not in node:
                parent = ".".join(parts[:i]) or "top level"
                hint = _did_you_mean(part, node) if isinstance(node, CN) else ""
                raise ConfigError(f"{where}: unknown config key {key} (no '{part}' in {parent}){hint}")
            if i < len(parts) - 1:
                node = node[part]
        current = node[parts[-1]]
        if isinstance(current, CN):
            raise ConfigError(f"{where}: {key} is a section; expected a leaf key such as "
                              f"{key}.{next(iter(current), 'KEY')}")
        node[parts[-1]] = _coerce(_decode(raw), current, raw, where)


def _decode(raw: Any) -> Any:
    """yacs' rule: strings are parsed as Python literals when they are one ('(0,1)', '1e-3', 'True')."""
    if isinstance(raw, str):
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return raw
    return raw


def _coerce(value: Any, default: Any, raw: Any, where: str) -> Any:
    """``value`` converted to the type of ``default`` where that is lossless, else ConfigError.

    Beyond yacs (which allows only list <-> tuple and None): int -> float (``SIGMA: 2``), a string for a
    string key stays the raw string even if it parses as another literal, element types of lists follow
    the default's element type, and None is rejected (a None would only fail later, far from the file).
    """
    if isinstance(default, str) and isinstance(raw, str):
        return value if isinstance(value, str) else raw  # "'val2017'" -> val2017, but "2017" stays "2017"
    want = type(default)
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        elem = _element_type(default)
        items = [_coerce_scalar(v, elem, f"{where}[{i}]") if elem else v for i, v in enumerate(value)]
        for i, v in enumerate(items):
            _check_leaf_type(v, f"{where}[{i}]")
        return want(items)
    return _coerce_scalar(value, want, where)


def _coerce_scalar(value: Any, want: type, where: str) -> Any:
    if type(value) is want:
        return value
    if want is float and type(value) is int:
        return float(value)
    raise ConfigError(f"{where}: got {type(value).__name__} {value!r}; expected {_type_name(want)}")


def _element_type(seq) -> Optional[type]:
    types = {type(v) for v in seq}
    return types.pop() if len(types) == 1 else None


def _check_leaf_type(value: Any, where: str) -> None:
    ok = (str, int, float, bool, list, tuple, type(None))
    if not isinstance(value, ok) or (isinstance(value, (list, tuple))
                                     and not all(isinstance(v, ok) for v in value)):
        raise ConfigError(f"{where}: value {value!r} of type {type(value).__name__}; expected a string, "
                          "number, boolean or list of them")


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            list: "a list", tuple: "a list"}.get(t, t.__name__)


def _did_you_mean(key: str, node: CN) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in node], n=1)
    return f"; did you mean {close[0]}?" if close else f"; expected one of {sorted(node)}"


def _yaml_position(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _one_line(msg: Any) -> str:
    return " ".join(str(msg).split())


def _to_plain(node: Any) -> Any:
    if isinstance(node, CN):
        return {k: _to_plain(v) for k, v in node.items()}
    if isinstance(node, tuple):
        return [_to_plain(v) for v in node]
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    return node
