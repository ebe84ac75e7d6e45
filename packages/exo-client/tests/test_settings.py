from __future__ import annotations

import pytest

from exo_client import ClientSettings, MissingCredentialError


def test_flags_win_over_environment() -> None:
    env = {
        "EXOSCALE_API_KEY": "EXOenv",
        "EXOSCALE_API_SECRET": "envsecret",
        "EXOSCALE_ZONE": "de-fra-1",
    }
    settings = ClientSettings.from_env(env, api_key="EXOflag", zone="at-vie-1")
    assert settings.api_key == "EXOflag"
    assert settings.api_secret == "envsecret"
    assert settings.endpoint == "https://api-at-vie-1.exoscale.com/v2"


def test_course_variable_names_are_accepted() -> None:
    env = {"EXOSCALE_KEY": "EXOk", "EXOSCALE_SECRET": "s", "EXOSCALE_ZONE_ID": "ignored"}
    settings = ClientSettings.from_env(env)
    assert (settings.api_key, settings.api_secret, settings.zone) == ("EXOk", "s", "ch-gva-2")


def test_endpoint_override_points_anywhere() -> None:
    env = {
        "EXOSCALE_API_KEY": "k",
        "EXOSCALE_API_SECRET": "s",
        "EXOSCALE_API_ENDPOINT": "http://127.0.0.1:8079/v2/",
    }
    assert ClientSettings.from_env(env).endpoint == "http://127.0.0.1:8079/v2"


@pytest.mark.parametrize(
    ("env", "missing"),
    [({}, "EXOSCALE_API_KEY"), ({"EXOSCALE_API_KEY": "k"}, "EXOSCALE_API_SECRET")],
)
def test_missing_credential_names_the_variable(env: dict[str, str], missing: str) -> None:
    with pytest.raises(MissingCredentialError, match=missing) as info:
        ClientSettings.from_env(env)
    assert info.value.variable == missing


def test_secret_is_not_in_repr() -> None:
    settings = ClientSettings(api_key="EXOk", api_secret="very-secret")
    assert "very-secret" not in repr(settings)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        ClientSettings(api_key="k", api_secret="s", timeout=0)
