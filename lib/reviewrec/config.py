"""Configuration: conf/base.yaml, overlaid by environment files and `--set key=value`.

Validation happens before Spark starts and fails with a ConfigError that names the key and the
file (or `--set`) it came from:
  * a key that conf/base.yaml does not define (except under the free-form `spark.conf`);
  * a value whose type differs from base.yaml's (ints are accepted for floats; keys that are
    null in base.yaml take the types listed in NULLABLE);
  * an enumerated key with a value outside its choices, or a number out of range;
  * an input path that does not exist (local paths; remote schemes are checked when read).

Transforms never receive a Config: jobs pass them the plain values they need.
"""
from __future__ import annotations

import copy
import datetime as dt
import glob
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

REPO_CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
BASE_NAME = "base.yaml"
FREE_FORM = ("spark.conf",)

# Types allowed for keys whose base.yaml value is null.
NULLABLE: dict[str, tuple[type, ...]] = {
    "spark.master": (str,),
    "input.path": (str,),
    "input.category": (str,),
    # YYYY-MM-DD; YAML reads an unquoted date as a date, normalised to the string when loaded.
    "input.day": (str, dt.date),
    "recsys.neighbors.min_similarity": (float, int),
    "model.checkpoint_dir": (str,),
    "model.retrain.min_growth": (float, int),
    "model.retrain.max_age_days": (float, int),
    "text.sparknlp_jar": (str,),
    "text.sparknlp_pos_model": (str,),
    "text.sparknlp_lemma_model": (str,),
}
# Keys whose value may also take another type than base.yaml's (e.g. "all" for a list).
ALSO: dict[str, tuple[type, ...]] = {
    "input.categories": (str,),
    "text.stop_words": (list,),
    "synthetic.start_day": (dt.date,),
}
ENUMS: dict[str, tuple[Any, ...]] = {
    "input.format": ("synthetic", "tsv", "parquet", "json"),
    "recsys.fill.use_model": ("auto", "never", "require"),
    "model.optimizer": ("rmsprop", "adam", "sgd"),
    "model.pooling": ("last", "max", "mean", "last_max", "last_mean", "last_max_mean"),
    "text.engine": ("builtin", "sparknlp"),
    "features.split": ("time", "random"),
    "recsys.ranker": ("item_cf", "user_cf", "blend", "popularity"),
    "recsys.feedback": ("auto", "explicit", "implicit"),
    "recsys.fill.method": ("auto", "bias", "bias_als", "cf"),
    "recsys.evaluate.split": ("auto", "leave_last_out", "time"),
}
# List keys whose every element must be one of the choices.
ENUM_LISTS: dict[str, tuple[Any, ...]] = {
    "recsys.evaluate.phases": ("valid", "test"),
}
# (min, max) inclusive; None leaves that side open.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "synthetic.rows": (1, None),
    "recsys.top_n": (1, None),
    "recsys.block_size": (1, None),
    "recsys.max_pairs": (1, None),
    "recsys.neighbors.k": (1, None),
    "recsys.neighbors.shrink": (0.0, None),
    "recsys.neighbors.max_item_degree": (0, None),
    "recsys.popularity.prior_weight": (0.0, None),
    "recsys.fill.neighbor_items": (0, None),
    "recsys.fill.top_popular": (0, None),
    "recsys.evaluate.test_fraction": (0.01, 0.99),
    "recsys.als.rank": (1, None),
    "recsys.als.reg": (0.0, None),
    "recsys.als.iters": (1, None),
    "synthetic.customers": (1, None),
    "synthetic.products": (1, None),
    "synthetic.files": (1, None),
    "synthetic.days": (0, None),
    "synthetic.cross_day_duplicate_fraction": (0.0, 0.5),
    "synthetic.correction_fraction": (0.0, 0.5),
    "synthetic.malformed_fraction": (0.0, 0.5),
    "synthetic.duplicate_fraction": (0.0, 0.5),
    "eda.top_words": (1, None),
    "ingest.broadcast_duplicate_ids": (0, None),
    "text.min_token_length": (1, None),
    "text.max_char_repeat": (1, None),
    "features.num_features": (2, 1 << 30),
    "features.idf_min_doc_freq": (0, None),
    "features.min_count": (1, None),
    "features.vocab_size": (1, None),
    "features.seq_len": (1, None),
    "features.train_fraction": (0.0, 1.0),
    "features.val_fraction": (0.0, 1.0),
    "features.files_per_split": (1, None),
    "model.embedding_dim": (1, None),
    "model.lstm_units": (1, None),
    "model.dropout": (0.0, 0.95),
    "model.user_buckets": (2, None),
    "model.item_buckets": (2, None),
    "model.user_embedding_dim": (1, None),
    "model.item_embedding_dim": (1, None),
    "model.id_dropout": (0.0, 1.0),
    "model.text_dropout": (0.0, 1.0),
    "model.label_smoothing": (0.0, 0.5),
    "model.learning_rate": (0.0, None),
    "model.batch_size": (1, None),
    "model.epochs": (1, None),
    "model.early_stopping_patience": (1, None),
    "model.num_proc": (1, None),
    "model.intra_op_threads": (0, None),
    "model.inter_op_threads": (0, None),
    "model.start_timeout": (1, None),
    "model.score_batch_size": (1, None),
    "model.ensemble_size": (1, 32),
    "model.retrain.min_growth": (0.0, None),
    "model.retrain.max_age_days": (0.0, None),
    "model.baseline_elastic_net": (0.0, 1.0),
    "model.baseline_max_iter": (1, None),
}
# model.retrain decides whether the train job trains, not what a training computes (the model
# records its own settings and data; retrain.py compares them): in the hash, turning the policy
# on would make every stage's outputs look stale to run.skip_existing.
HASH_EXCLUDE = ("run.skip_existing", "spark", "model.group_grads", "model.retrain")
# Keys of the incremental, by-day input (docs/incremental.md) left out of the hash while they
# have these values (no day, no days), so a config that does not use days keeps the hash it had
# before the keys existed. input.day counts when set: a day's run reads other input than the
# run over all data, and run.skip_existing must not take one day's outputs for another's.
HASH_OMIT_AT_DEFAULT: dict[str, Any] = {"input.day": None, "synthetic.days": 0}
# Generator settings that only shape days (synthetic.days > 0): left out of the hash without days.
HASH_DAYS_ONLY = ("synthetic.start_day", "synthetic.cross_day_duplicate_fraction", "synthetic.correction_fraction")
DAY_DIR_PREFIX = "dt="
REMOTE_SCHEMES = ("s3://", "s3a://", "s3n://", "gs://", "hdfs://", "abfs://", "abfss://", "wasbs://", "dbfs:/")


class ConfigError(ValueError):
    """A configuration problem, with the key and the file that caused it in the message."""


class Config(Mapping[str, Any]):
    """Read-only nested configuration with dotted-key access: cfg.get_path("input.path")."""

    def __init__(self, data: dict[str, Any], origins: dict[str, str]):
        self._data = data
        self.origins = origins  # dotted key -> file (or "--set") that gave its value

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get_path(self, dotted: str) -> Any:
        node: Any = self._data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"config key {dotted!r} is not defined")
            node = node[part]
        return node

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    def hash(self) -> str:
        """Stable short hash of the settings that shape outputs: recorded next to every output.

        Keys in HASH_EXCLUDE (how to run, not what to compute) do not count, so rerunning with
        run.skip_existing=true or more executor memory finds the earlier outputs current.
        """
        data = copy.deepcopy(self._data)
        omit = list(HASH_EXCLUDE) + [k for k, v in HASH_OMIT_AT_DEFAULT.items() if _lookup(data, k) in (v, None)]
        if not _lookup(data, "synthetic.days"):
            omit += HASH_DAYS_ONLY
        for dotted in omit:
            *parents, last = dotted.split(".")
            node = data
            for p in parents:
                node = node.get(p, {})
            node.pop(last, None)
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def flat(self) -> dict[str, Any]:
        return dict(_flatten(self._data))

    def log_effective(self, logger: logging.Logger = log) -> None:
        # Object-store keys a conf or --set carries are shown redacted (reviewrec.objectstore).
        from reviewrec.objectstore import redact_text, redact_value, secret_values

        flat = self.flat()
        secrets = secret_values(flat)
        logger.info("effective configuration (hash %s):", self.hash())
        for key, value in sorted(flat.items()):
            logger.info("  %s = %r   [%s]", key, redact_value(key, value),
                        redact_text(self.origins.get(key, "base.yaml"), secrets))


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key not in FREE_FORM:
            yield from _flatten(v, key + ".")
        elif isinstance(v, dict) and key in FREE_FORM:
            for ck, cv in v.items():
                yield f"{key}.{ck}", cv
        else:
            yield key, v


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return data


def resolve_conf_file(name: str) -> Path:
    """Find a conf file as given, else by base name in the working directory (YARN --files)."""
    p = Path(name)
    if p.is_file():
        return p
    for cand in (Path.cwd() / p.name, REPO_CONF_DIR / p.name):
        if cand.is_file():
            return cand
    raise ConfigError(f"config file not found: {name} (also looked for {p.name} in {Path.cwd()} and {REPO_CONF_DIR})")


def _find_base(env_files: list[Path]) -> Path:
    env = os.environ.get("REVIEWREC_BASE_CONF")
    cands = [Path(env)] if env else []
    cands += [f.parent / BASE_NAME for f in env_files] + [REPO_CONF_DIR / BASE_NAME, Path.cwd() / BASE_NAME]
    for c in cands:
        if c.is_file():
            return c
    raise ConfigError(f"{BASE_NAME} not found; looked in {[str(c) for c in cands]}")


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _check_type(key: str, base_value: Any, value: Any, origin: str) -> None:
    if value is None:
        if base_value is None or key in NULLABLE:
            return
        raise ConfigError(f"{origin}: {key} may not be null (expected {type(base_value).__name__})")
    if base_value is None:
        allowed = NULLABLE.get(key)
        if allowed is None:
            raise ConfigError(f"{origin}: {key} has no declared type (add it to config.NULLABLE)")
    else:
        allowed = (type(base_value),) + ALSO.get(key, ())
        if float in allowed:
            allowed = allowed + (int,)
    # bool is a subclass of int: never let True pass as a number, or 1 as a flag.
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok:
        raise ConfigError(
            f"{origin}: {key} = {value!r} has type {type(value).__name__}, expected {_type_name(allowed)}"
        )


def _merge(base: dict[str, Any], over: Mapping[str, Any], origin: str, origins: dict[str, str],
           prefix: str = "") -> None:
    for k, v in over.items():
        key = f"{prefix}{k}"
        if key in FREE_FORM:
            if not isinstance(v, dict):
                raise ConfigError(f"{origin}: {key} must be a mapping of property -> value")
            base.setdefault(k, {})
            for ck, cv in v.items():
                if isinstance(cv, (dict, list)):
                    raise ConfigError(f"{origin}: {key}.{ck} must be a scalar")
                base[k][ck] = cv
                origins[f"{key}.{ck}"] = origin
            continue
        if k not in base:
            known = sorted(base) if base else []
            raise ConfigError(f"{origin}: unknown config key {key!r} (known under {prefix or 'top level'}: {known})")
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{origin}: {key} is a section; expected a mapping, got {v!r}")
            _merge(base[k], v, origin, origins, key + ".")
            continue
        _check_type(key, base[k], v, origin)
        base[k] = v
        origins[key] = origin


def parse_set(item: str) -> dict[str, Any]:
    """`a.b.c=value` -> {"a": {"b": {"c": value}}}, value parsed as a YAML scalar."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except (yaml.YAMLError, ValueError):  # ValueError: a date-like value that is no date (2015-02-30)
        value = raw
    # spark.conf properties themselves contain dots: everything after "spark.conf." is one key.
    if key.startswith("spark.conf."):
        return {"spark": {"conf": {key[len("spark.conf."):]: value if not isinstance(value, (dict, list)) else raw}}}
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _is_remote(path: str) -> bool:
    return path.startswith(REMOTE_SCHEMES)


def _normalise_day(data: dict[str, Any], section: str, key: str, origins: dict[str, str]) -> None:
    """A YYYY-MM-DD day (a string or a YAML date) as the string; ConfigError naming the key else."""
    value = data.get(section, {}).get(key)
    if value is None:
        return
    dotted = f"{section}.{key}"
    try:
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value).strip())
        if not isinstance(value, dt.date) and len(str(value).strip()) != 10:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{origins.get(dotted, BASE_NAME)}: {dotted} = {value!r} is not a day (YYYY-MM-DD)") from None
    data[section][key] = day.isoformat()


def _validate_days(data: dict[str, Any], flat: dict[str, Any], origins: dict[str, str]) -> None:
    """The incremental input's keys (docs/incremental.md): input.day, synthetic.days/start_day."""
    _normalise_day(data, "input", "day", origins)
    _normalise_day(data, "synthetic", "start_day", origins)
    day, days = data["input"].get("day"), data["synthetic"].get("days") or 0
    where = origins.get("input.day", BASE_NAME)
    if days and data["synthetic"]["rows"] < days:
        raise ConfigError(f"{origins.get('synthetic.rows', BASE_NAME)}: synthetic.rows = {data['synthetic']['rows']} "
                          f"is fewer than synthetic.days = {days} (rows are spread over the days)")
    if day is None:
        return
    if not data["ingest"]["dedupe"]:
        raise ConfigError(f"{where}: input.day = {day} merges the day into reviews by review_id, which needs "
                          "ingest.dedupe = true")
    fmt, path = flat.get("input.format"), flat.get("input.path")
    if fmt == "synthetic":
        if not days:
            raise ConfigError(f"{where}: input.day = {day} with input.format = synthetic needs synthetic.days > 0 "
                              "(the generator then writes one directory per day, <root>/raw/dt=YYYY-MM-DD)")
        if day < data["synthetic"]["start_day"]:
            raise ConfigError(f"{where}: input.day = {day} is before synthetic.start_day = "
                              f"{data['synthetic']['start_day']}, the generator's first day")
    elif path and glob.has_magic(path):
        raise ConfigError(f"{where}: input.day = {day} reads <input.path>/{DAY_DIR_PREFIX}{day}/: input.path must be "
                          f"the directory holding the day directories, not a pattern ({path})")


def _validate(data: dict[str, Any], origins: dict[str, str]) -> None:
    flat = dict(_flatten(data))
    for key, choices in ENUMS.items():
        if key in flat and flat[key] not in choices:
            raise ConfigError(f"{origins.get(key, BASE_NAME)}: {key} = {flat[key]!r}; choose one of {list(choices)}")
    for key, choices in ENUM_LISTS.items():
        bad = [x for x in flat.get(key) or () if x not in choices]
        if bad:
            raise ConfigError(f"{origins.get(key, BASE_NAME)}: {key} has {bad}; choose from {list(choices)}")
    for key, (lo, hi) in RANGES.items():
        v = flat.get(key)
        if v is None:
            continue
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ConfigError(f"{origins.get(key, BASE_NAME)}: {key} = {v!r} out of range [{lo}, {hi}]")
    cats = flat.get("input.categories")
    if isinstance(cats, str) and cats != "all":
        raise ConfigError(f"{origins.get('input.categories', BASE_NAME)}: input.categories must be a list or "
                          f"\"all\", got {cats!r}")
    fmt, path = flat.get("input.format"), flat.get("input.path")
    if fmt != "synthetic":
        origin = origins.get("input.path", origins.get("input.format", BASE_NAME))
        if not path:
            raise ConfigError(f"{origin}: input.path is required when input.format = {fmt!r}")
        if not _is_remote(path):
            local = path[len("file://"):] if path.startswith("file://") else path
            if not (os.path.exists(local) or glob.glob(local)):
                raise ConfigError(f"{origin}: input.path does not exist: {path}")
    _validate_days(data, flat, origins)


def load_config(conf_files: list[str] | tuple[str, ...] = (), overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load base.yaml, overlay `conf_files` in order, then `overrides` ("key=value"), validate."""
    env_paths = [resolve_conf_file(f) for f in conf_files]
    base_path = _find_base(env_paths)
    data = _read_yaml(base_path)
    origins: dict[str, str] = {}
    for p in env_paths:
        if p.resolve() == base_path.resolve():
            continue
        _merge(data, _read_yaml(p), str(p), origins)
    for item in overrides:
        _merge(data, parse_set(item), f"--set {item}", origins)
    _validate(data, origins)
    return Config(data, origins)
