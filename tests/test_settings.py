import json

import pytest

from envirollm_core.errors import UsageError
from envirollm_core.settings import (
    ReadOnlyError, Settings, load_settings, read_only_mode, save_settings, settings_path,
)


def test_defaults_when_nothing_saved():
    assert load_settings() == Settings()


def test_round_trip():
    wanted = Settings(country_code="FRA", electricity_price_per_kwh=0.25, currency="EUR", sampling_interval_s=0.2)
    save_settings(wanted)
    assert load_settings() == wanted


@pytest.mark.parametrize(
    "bad, message",
    [
        (Settings(sampling_interval_s=0), "sampling interval"),
        (Settings(sampling_interval_s=float("nan")), "sampling interval"),
        (Settings(carbon_intensity_g_per_kwh=-5), "carbon intensity"),
        (Settings(electricity_price_per_kwh=1e9), "electricity price"),
        (Settings(country_code="France"), "country code"),
        (Settings(judge_url="ftp://x"), "judge URL"),
    ],
)
def test_out_of_range_is_refused_and_nothing_is_lost(bad, message):
    save_settings(Settings(country_code="DEU"))
    with pytest.raises(UsageError, match=message):
        save_settings(bad)
    assert load_settings() == Settings(country_code="DEU")


def test_broken_file_is_a_one_line_error():
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text("{not json")
    with pytest.raises(UsageError, match="fix or delete") as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_read_only_from_environment_refuses_writes(monkeypatch):
    save_settings(Settings(country_code="DEU"))
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    assert read_only_mode()
    with pytest.raises(ReadOnlyError):
        save_settings(Settings(country_code="FRA"))
    assert load_settings().country_code == "DEU"


def test_read_only_from_file_cannot_be_turned_off_by_saving():
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text(json.dumps({"read_only": True}))
    assert read_only_mode()
    with pytest.raises(ReadOnlyError):
        save_settings(Settings(read_only=False))


def test_the_shared_sampler_starts_at_the_saved_interval(monkeypatch):
    from envirollm_core.telemetry import sampler as sampler_module

    save_settings(Settings(sampling_interval_s=0.25))
    monkeypatch.setattr(sampler_module, "_shared", None)
    shared = sampler_module.get_sampler()
    try:
        assert shared.interval_s == 0.25
    finally:
        shared.close()


def test_the_saved_default_judge_serves_commands_that_name_none():
    from envirollm_core.cli import build_parser
    from envirollm_core.cli.quality import judge_config

    save_settings(Settings(judge_url="http://127.0.0.1:9/v1", judge_model="qwen2.5:0.5b"))
    unnamed = judge_config(build_parser().parse_args(["demo"]))
    assert (unnamed.url, unnamed.model, unnamed.disabled) == ("http://127.0.0.1:9/v1", "qwen2.5:0.5b", False)
    assert judge_config(build_parser().parse_args(["demo", "--judge", "none"])).disabled
    named = judge_config(build_parser().parse_args(["demo", "--judge-url", "http://127.0.0.1:8/v1", "--judge-model", "m"]))
    assert (named.url, named.model) == ("http://127.0.0.1:8/v1", "m")
