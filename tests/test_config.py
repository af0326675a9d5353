"""Config loading and validation: errors name the key and the file; --set types values."""
from __future__ import annotations

from pathlib import Path

import pytest

from reviewrec.config import ConfigError, load_config, parse_set

REPO = Path(__file__).resolve().parents[1]
LOCAL = str(REPO / "conf" / "local.yaml")


def _write(tmp_path: Path, text: str, name: str = "env.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_base_plus_local_overlay_and_origins():
    cfg = load_config([LOCAL])
    assert cfg.get_path("spark.master") == "local[2]"
    assert cfg.get_path("input.format") == "synthetic"  # from base
    assert cfg.origins["spark.master"].endswith("local.yaml")
    assert "input.format" not in cfg.origins


def test_set_overrides_with_yaml_typing():
    cfg = load_config([LOCAL], ["synthetic.rows=1234", "synthetic.malformed_fraction=0.01",
                                "input.categories=all", "run.skip_existing=true"])
    assert cfg.get_path("synthetic.rows") == 1234
    assert cfg.get_path("synthetic.malformed_fraction") == 0.01
    assert cfg.get_path("input.categories") == "all"
    assert cfg.get_path("run.skip_existing") is True
    assert cfg.origins["synthetic.rows"] == "--set synthetic.rows=1234"


def test_spark_conf_keys_keep_their_dots():
    assert parse_set("spark.conf.spark.sql.shuffle.partitions=16") == {
        "spark": {"conf": {"spark.sql.shuffle.partitions": 16}}}
    cfg = load_config([LOCAL], ["spark.conf.spark.executor.memory=8g"])
    assert cfg["spark"]["conf"]["spark.executor.memory"] == "8g"


def test_unknown_key_names_key_and_file(tmp_path):
    env = _write(tmp_path, "input:\n  formt: tsv\n")
    with pytest.raises(ConfigError) as e:
        load_config([env])
    assert "input.formt" in str(e.value) and env in str(e.value)


def test_unknown_key_from_set_names_the_flag():
    with pytest.raises(ConfigError, match=r"--set synthetic\.rowz=5.*unknown config key 'synthetic\.rowz'"):
        load_config([], ["synthetic.rowz=5"])


def test_wrong_type_names_key_file_and_types(tmp_path):
    env = _write(tmp_path, "synthetic:\n  rows: many\n")
    with pytest.raises(ConfigError) as e:
        load_config([env])
    msg = str(e.value)
    assert "synthetic.rows" in msg and "str" in msg and "int" in msg and env in msg


def test_bool_is_not_an_int_and_int_is_a_float():
    with pytest.raises(ConfigError, match="synthetic.rows"):
        load_config([], ["synthetic.rows=true"])
    assert load_config([], ["synthetic.malformed_fraction=0"]).get_path("synthetic.malformed_fraction") == 0


def test_enum_and_range_checks():
    with pytest.raises(ConfigError, match="input.format.*csv"):
        load_config([], ["input.format=csv"])
    with pytest.raises(ConfigError, match="synthetic.rows.*out of range"):
        load_config([], ["synthetic.rows=0"])
    with pytest.raises(ConfigError, match='input.categories must be a list or "all"'):
        load_config([], ["input.categories=some"])


def test_recommender_choices_are_checked_when_the_config_loads():
    """A misspelt ranker, feedback, fill method, split or phase fails at load (before Spark
    starts), naming the key, the flag it came from and the choices."""
    for setting, key in (("recsys.ranker=itemcf", "recsys.ranker"), ("recsys.feedback=implict", "recsys.feedback"),
                         ("recsys.fill.method=als", "recsys.fill.method"),
                         ("recsys.evaluate.split=random", "recsys.evaluate.split")):
        with pytest.raises(ConfigError, match=rf"--set {setting}.*{key}.*choose one of") as e:
            load_config([], [setting])
        assert setting.split("=")[1] in str(e.value)
    with pytest.raises(ConfigError, match=r"recsys.evaluate.phases has \['tset'\]; choose from \['valid', 'test'\]"):
        load_config([], ["recsys.evaluate.phases=[valid, tset]"])
    cfg = load_config([], ["recsys.ranker=blend", "recsys.evaluate.phases=[test]"])
    assert cfg["recsys"]["ranker"] == "blend" and cfg["recsys"]["evaluate"]["phases"] == ["test"]


def test_missing_input_path_is_an_error_naming_path_and_origin(tmp_path):
    missing = str(tmp_path / "nope" / "*.tsv.gz")
    with pytest.raises(ConfigError) as e:
        load_config([], ["input.format=tsv", f"input.path={missing}"])
    assert missing in str(e.value) and "--set input.path" in str(e.value)
    with pytest.raises(ConfigError, match="input.path is required"):
        load_config([], ["input.format=parquet"])
    (tmp_path / "a.tsv").write_text("x")
    cfg = load_config([], ["input.format=tsv", f"input.path={tmp_path}/*.tsv"])  # globs are fine
    assert cfg.get_path("input.format") == "tsv"
    # Remote paths are checked when read, not here.
    assert load_config([], ["input.format=tsv", "input.path=s3://bucket/x/"]).get_path("input.path") == "s3://bucket/x/"


def test_section_replaced_by_scalar_is_rejected(tmp_path):
    env = _write(tmp_path, "input: tsv\n")
    with pytest.raises(ConfigError, match="input is a section"):
        load_config([env])


def test_bad_yaml_and_missing_file(tmp_path):
    env = _write(tmp_path, "input: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([env])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([str(tmp_path / "missing.yaml")])


def test_hash_changes_with_values_only():
    a, b = load_config([LOCAL]), load_config([LOCAL])
    assert a.hash() == b.hash()
    assert load_config([LOCAL], ["synthetic.seed=7"]).hash() != a.hash()


def test_cluster_confs_are_valid_and_do_not_set_a_master():
    for name in ("emr.yaml", "dataproc.yaml"):
        cfg = load_config([str(REPO / "conf" / name)])
        assert cfg.get_path("spark.master") is None
        assert cfg.get_path("input.path").startswith(("s3://", "gs://"))


def test_hash_ignores_how_to_run():
    base = load_config([LOCAL])
    assert load_config([LOCAL], ["run.skip_existing=true", "spark.conf.spark.executor.memory=9g"]).hash() == base.hash()
    assert load_config([LOCAL], ["run.root=/elsewhere"]).hash() != base.hash()
