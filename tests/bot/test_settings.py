"""Settings from the environment (bot/settings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from model_assigner.bot.resources import default_config_dir
from model_assigner.bot.settings import DEFAULT_API_URL, DEFAULT_STATE, SettingsError, load_settings

DEFAULT_CONFIG_DIR = default_config_dir()

SECRET = "whsec-do-not-print-7f3a"


@pytest.fixture(scope="module")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def public_key_pem(private_key_pem: str) -> str:
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def full_env(private_key_pem: str) -> dict[str, str]:
    return {
        "GITHUB_APP_ID": "123456",
        "GITHUB_PRIVATE_KEY": private_key_pem,
        "GITHUB_WEBHOOK_SECRET": SECRET,
    }


def error_for(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert "\n" not in message, "one line, for a crash-looping container's log"
    return message


# -- dry-run and defaults -----------------------------------------------------


def test_a_relative_state_path_is_the_project_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings({"MODEL_ASSIGNER_STATE": "x/s.json"}).state_path == (
        DEFAULT_CONFIG_DIR.parent / "x/s.json"
    )
    absolute = tmp_path / "abs.json"
    assert load_settings({"MODEL_ASSIGNER_STATE": str(absolute)}).state_path == absolute


def test_a_relative_config_folder_is_the_project_folders_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`MODEL_ASSIGNER_CONFIG=config` (as .env files say) means the same
    folder for the server and for `model-assigner quota` run from anywhere."""
    monkeypatch.chdir(tmp_path)
    assert load_settings({"MODEL_ASSIGNER_CONFIG": "config"}).config_dir == DEFAULT_CONFIG_DIR
    assert load_settings({"MODEL_ASSIGNER_CONFIG": str(tmp_path)}).config_dir == tmp_path
    assert load_settings({}).config_dir == DEFAULT_CONFIG_DIR


def test_no_credentials_is_dry_run_with_defaults() -> None:
    settings = load_settings({})
    assert settings.dry_run
    assert settings.app_id is None and settings.private_key is None
    assert settings.webhook_secret is None
    assert settings.api_url == DEFAULT_API_URL == "https://api.github.com"
    # data/state.json of the project folder (where `serve` runs), from any cwd
    assert settings.state_path == DEFAULT_CONFIG_DIR.parent / DEFAULT_STATE
    assert DEFAULT_STATE == "data/state.json"
    assert settings.config_dir == DEFAULT_CONFIG_DIR
    assert settings.max_body_bytes == 25 * 1024 * 1024


def test_dry_run_keeps_a_webhook_secret_and_paths() -> None:
    settings = load_settings(
        {
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "MODEL_ASSIGNER_STATE": "/var/lib/ma/state.json",
            "MODEL_ASSIGNER_CONFIG": "/etc/ma",
            "GITHUB_APP_ID": "  ",
            "GITHUB_PRIVATE_KEY": "",
        }
    )
    assert settings.dry_run
    assert settings.webhook_secret == SECRET
    assert settings.state_path == Path("/var/lib/ma/state.json")
    assert settings.config_dir == Path("/etc/ma")


def test_empty_secret_means_unset() -> None:
    assert load_settings({"GITHUB_WEBHOOK_SECRET": ""}).webhook_secret is None


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example.com/api/v3/")
    assert load_settings().api_url == "https://ghe.example.com/api/v3"


# -- a full App configuration ---------------------------------------------------


def test_full_credentials_are_not_dry_run(full_env: dict[str, str], private_key_pem: str) -> None:
    settings = load_settings(full_env)
    assert not settings.dry_run
    assert settings.app_id == 123456
    assert settings.private_key == private_key_pem.strip()
    assert settings.webhook_secret == SECRET


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com/api/v3"),
        ("http://127.0.0.1:8999", "http://127.0.0.1:8999"),
        ("  https://api.github.com  ", "https://api.github.com"),
    ],
)
def test_api_url_for_enterprise_server_and_stand_ins(
    full_env: dict[str, str], raw: str, expected: str
) -> None:
    assert load_settings({**full_env, "GITHUB_API_URL": raw}).api_url == expected


def test_key_from_a_file(full_env: dict[str, str], private_key_pem: str, tmp_path: Path) -> None:
    path = tmp_path / "app.pem"
    path.write_text(private_key_pem)
    env = {**full_env, "GITHUB_PRIVATE_KEY_PATH": str(path)}
    del env["GITHUB_PRIVATE_KEY"]
    assert load_settings(env).private_key == private_key_pem.strip()


def test_key_with_escaped_newlines(full_env: dict[str, str], private_key_pem: str) -> None:
    """Some platforms store a multi-line secret with literal backslash-n."""
    flat = private_key_pem.strip().replace("\n", "\\n")
    assert "\n" not in flat
    settings = load_settings({**full_env, "GITHUB_PRIVATE_KEY": flat})
    assert settings.private_key == private_key_pem.strip()


# -- missing or malformed settings name the variable ----------------------------


@pytest.mark.parametrize("raw", ["abc", "12a", "-5", "1.0", "0x10", "1 2", "²", "١٢"])
def test_non_numeric_app_id(full_env: dict[str, str], raw: str) -> None:
    message = error_for({**full_env, "GITHUB_APP_ID": raw})
    assert message.startswith("GITHUB_APP_ID:")


def test_app_id_without_secret(full_env: dict[str, str]) -> None:
    del full_env["GITHUB_WEBHOOK_SECRET"]
    message = error_for(full_env)
    assert message.startswith("GITHUB_WEBHOOK_SECRET:")
    assert "missing" in message


def test_app_id_without_key(full_env: dict[str, str]) -> None:
    del full_env["GITHUB_PRIVATE_KEY"]
    assert "GITHUB_PRIVATE_KEY" in error_for(full_env)


def test_key_without_app_id(full_env: dict[str, str]) -> None:
    del full_env["GITHUB_APP_ID"]
    assert error_for(full_env).startswith("GITHUB_APP_ID:")


def test_key_and_key_path_together(full_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text(full_env["GITHUB_PRIVATE_KEY"])
    message = error_for({**full_env, "GITHUB_PRIVATE_KEY_PATH": str(tmp_path / "k.pem")})
    assert "GITHUB_PRIVATE_KEY" in message and "GITHUB_PRIVATE_KEY_PATH" in message


def _unreadable_missing(tmp_path: Path) -> Path:
    return tmp_path / "no-such.pem"


def _unreadable_directory(tmp_path: Path) -> Path:
    return tmp_path


def _unreadable_binary(tmp_path: Path) -> Path:
    """A DER (binary) key: not text at all."""
    path = tmp_path / "key.der"
    path.write_bytes(b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00\xff\xfe")
    return path


def _unreadable_under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile" / "key.pem"


@pytest.mark.parametrize(
    "make_path",
    [_unreadable_missing, _unreadable_directory, _unreadable_binary, _unreadable_under_a_file],
)
def test_unreadable_key_path(full_env: dict[str, str], tmp_path: Path, make_path: object) -> None:
    assert callable(make_path)
    path = make_path(tmp_path)
    env = {**full_env, "GITHUB_PRIVATE_KEY_PATH": str(path)}
    del env["GITHUB_PRIVATE_KEY"]
    message = error_for(env)
    assert message.startswith("GITHUB_PRIVATE_KEY_PATH:")
    assert str(path) in message


NOT_A_KEY_BODY = "MIIEowIBAAKCAQEAnotreallyakeyatall" * 3


@pytest.mark.parametrize(
    "text",
    [
        "hunter2-not-a-key",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ user@host",
        f"-----BEGIN RSA PRIVATE KEY-----\n{NOT_A_KEY_BODY}\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
    ],
)
def test_not_a_pem_private_key(full_env: dict[str, str], text: str) -> None:
    message = error_for({**full_env, "GITHUB_PRIVATE_KEY": text})
    assert message.startswith("GITHUB_PRIVATE_KEY:")
    assert "PEM" in message
    assert "hunter2" not in message and NOT_A_KEY_BODY not in message


def test_a_public_key_is_not_a_private_key(full_env: dict[str, str], public_key_pem: str) -> None:
    assert error_for({**full_env, "GITHUB_PRIVATE_KEY": public_key_pem}).startswith(
        "GITHUB_PRIVATE_KEY:"
    )


def test_truncated_private_key(full_env: dict[str, str], private_key_pem: str) -> None:
    lines = private_key_pem.strip().splitlines()
    truncated = "\n".join(lines[:5] + lines[-1:])
    assert error_for({**full_env, "GITHUB_PRIVATE_KEY": truncated}).startswith(
        "GITHUB_PRIVATE_KEY:"
    )


def test_not_a_pem_key_in_a_file(full_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "app.pem"
    path.write_text("this is not a key\n")
    env = {**full_env, "GITHUB_PRIVATE_KEY_PATH": str(path)}
    del env["GITHUB_PRIVATE_KEY"]
    assert error_for(env).startswith("GITHUB_PRIVATE_KEY_PATH:")


@pytest.mark.parametrize(
    "url",
    [
        "api.github.com",
        "ftp://api.github.com",
        "https://",
        "http://",
        "http:///api/v3",
        "https://ghe example.com",
        "https://[::1",
        "//api.github.com",
    ],
)
def test_bad_api_url(url: str) -> None:
    message = error_for({"GITHUB_API_URL": url})
    assert message.startswith("GITHUB_API_URL:")


def test_bad_api_url_stops_a_full_configuration_too(full_env: dict[str, str]) -> None:
    assert error_for({**full_env, "GITHUB_API_URL": "localhost:8080"}).startswith("GITHUB_API_URL:")


# -- secrets never printed --------------------------------------------------------


def test_repr_and_str_never_show_key_or_secret(
    full_env: dict[str, str], private_key_pem: str
) -> None:
    settings = load_settings(full_env)
    key_lines = [line for line in private_key_pem.splitlines() if "-----" not in line]
    for shown in (repr(settings), str(settings), f"{settings}", f"{settings!r}", repr([settings])):
        assert SECRET not in shown
        assert all(line not in shown for line in key_lines)
        assert "PRIVATE KEY" not in shown
        assert "123456" in shown  # the id is not secret, and shows it is the right object
        assert "webhook_secret=set" in shown


def test_repr_in_dry_run_says_so() -> None:
    shown = repr(load_settings({}))
    assert "dry_run=True" in shown and "webhook_secret=unset" in shown


def test_errors_do_not_chain_the_key(full_env: dict[str, str]) -> None:
    """A traceback of the error must not show the key through its context."""
    bad = f"-----BEGIN RSA PRIVATE KEY-----\n{NOT_A_KEY_BODY}\n-----END RSA PRIVATE KEY-----"
    with pytest.raises(SettingsError) as caught:
        load_settings({**full_env, "GITHUB_PRIVATE_KEY": bad})
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert NOT_A_KEY_BODY not in repr(caught.value.args)


def test_log_level_is_checked_with_the_other_settings() -> None:
    assert load_settings({}).log_level == "INFO"
    assert load_settings({"MODEL_ASSIGNER_LOG_LEVEL": " debug "}).log_level == "DEBUG"
    with pytest.raises(SettingsError) as caught:
        load_settings({"MODEL_ASSIGNER_LOG_LEVEL": "loud"})
    assert str(caught.value) == (
        "MODEL_ASSIGNER_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, "
        "got 'LOUD'"
    )


def test_a_bad_log_level_stops_the_server_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from model_assigner.bot.web.app import create_app

    monkeypatch.setenv("MODEL_ASSIGNER_LOG_LEVEL", "LOUD")
    with pytest.raises(SystemExit) as exited:
        create_app()
    assert exited.value.code == 4
    err = capsys.readouterr().err
    assert err.startswith("model-assigner: cannot start: MODEL_ASSIGNER_LOG_LEVEL: ")
    assert "Traceback" not in err
