"""User settings: carbon intensity, electricity price, sampling interval, default judge, read-only mode.

Stored as JSON in `$ENVIROLLM_HOME/settings.json`. API keys are never part of
it. Read-only mode (for a page shared on a LAN) comes from the environment
(`ENVIROLLM_READ_ONLY=1`) or from `read_only` in that file, and no page can
turn it off: `save_settings` refuses to write while it is on.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from dataclasses import asdict, dataclass, fields

from envirollm_core.errors import UsageError
from envirollm_core.paths import envirollm_home

TRUE_WORDS = {"1", "true", "yes", "on"}


class ReadOnlyError(UsageError):
    """A write was attempted while EnviroLLM is in read-only mode."""

    def __init__(self, action: str, reason: str = "ENVIROLLM_READ_ONLY is set") -> None:
        super().__init__(f"read-only mode: {action} is not allowed on this instance ({reason})")


@dataclass(frozen=True)
class Settings:
    country_code: str | None = None  # ISO 3166 alpha-3, picks the grid's carbon intensity
    carbon_intensity_g_per_kwh: float | None = None  # the user's own figure, overrides the country's
    electricity_price_per_kwh: float | None = None
    currency: str = "USD"
    sampling_interval_s: float = 0.1
    judge_url: str | None = None
    judge_model: str | None = None
    read_only: bool = False
    energy_from: str | None = None  # default of --energy-from: None (this machine) or prometheus://HOST:PORT
    energy_selector: str | None = None  # default of --energy-selector

    def validate(self) -> None:
        """One-line UsageError for a value out of range."""
        if self.country_code is not None and not (len(self.country_code) == 3 and self.country_code.isalpha()):
            raise UsageError(f"country code must be 3 letters (ISO 3166 alpha-3, e.g. FRA), not {self.country_code!r}")
        _check_range("carbon intensity (g/kWh)", self.carbon_intensity_g_per_kwh, 0, 2000)
        _check_range("electricity price per kWh", self.electricity_price_per_kwh, 0, 100)
        _check_range("sampling interval (s)", self.sampling_interval_s, 0.01, 10)
        if self.judge_url is not None and not self.judge_url.startswith(("http://", "https://")):
            raise UsageError(f"judge URL must start with http:// or https://, not {self.judge_url!r}")
        self._validate_energy_from()

    def _validate_energy_from(self) -> None:
        if self.energy_from is None and self.energy_selector is None:
            return  # this machine: nothing to check (and no telemetry to import)
        from envirollm_core.telemetry.meters import check_energy_from
        from envirollm_core.telemetry.prometheus import strip_credentials

        check_energy_from(self.energy_from, self.energy_selector)
        if self.energy_from and strip_credentials(self.energy_from) != self.energy_from.strip():
            raise UsageError("the Prometheus URL holds credentials, and credentials are never stored: save it without "
                             "them and give them on the command line (--energy-from prometheus://user:password@HOST:PORT)")


def _check_range(label: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
        raise UsageError(f"{label} must be a number from {low} to {high}, not {value!r}")


def settings_path():
    return envirollm_home() / "settings.json"


def load_settings() -> Settings:
    """The saved settings; defaults when none are saved. A broken file is a one-line error."""
    path = settings_path()
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read settings from {path}: {exc}; fix or delete the file") from None
    if not isinstance(raw, dict):
        raise UsageError(f"cannot read settings from {path}: expected a JSON object; fix or delete the file")
    known = {f.name for f in fields(Settings)}
    try:
        settings = Settings(**{key: value for key, value in raw.items() if key in known})
    except TypeError as exc:
        raise UsageError(f"cannot read settings from {path}: {exc}") from None
    settings.validate()
    return settings


def read_only_reason() -> str | None:
    """Why writes are refused now, or None when they are allowed.

    Read-only mode fails closed: `read_only` in the settings file counts even when another value there is
    out of range, and a settings file that cannot be read at all refuses writes until it is fixed (a broken
    file is no reason to open what it may have closed)."""
    if os.environ.get("ENVIROLLM_READ_ONLY", "").strip().lower() in TRUE_WORDS:
        return "ENVIROLLM_READ_ONLY is set"
    path = settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError):
        return f"the settings file {path} cannot be read; fix or delete it"
    if not isinstance(raw, dict):
        return f"the settings file {path} is not a JSON object; fix or delete it"
    return f"read_only is set in {path}" if raw.get("read_only") else None


def read_only_mode() -> bool:
    """True when writes are refused: `ENVIROLLM_READ_ONLY` set truthy, or `read_only` in the settings file."""
    return read_only_reason() is not None


def ensure_writable(action: str) -> None:
    """Raise ReadOnlyError when in read-only mode; every write path in the core calls this first."""
    reason = read_only_reason()
    if reason is not None:
        raise ReadOnlyError(action, reason)


def save_settings(settings: Settings) -> None:
    ensure_writable("changing settings")
    settings.validate()
    path = settings_path()
    temporary = path.with_suffix(".json.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
        os.replace(temporary, path)  # atomic: a crash never leaves half a settings file
    except OSError as exc:  # a read-only or full disk: the old file stays as it was, and no .tmp is left
        raise UsageError(f"cannot save settings to {path}: {exc.strerror or exc}; nothing was changed") from None
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass


def listens_beyond_loopback(server_address: str | None) -> bool:
    """Whether a server bound to `server_address` can be reached from other machines (empty: every interface)."""
    address = (server_address or "").strip().strip("[]")
    if address.lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True  # a host name, or nothing at all (Streamlit then listens on every interface)


def lan_exposure_warning(server_address: str | None) -> str | None:
    """The banner every page shows when the app is writable and reachable from the network, else None."""
    if not listens_beyond_loopback(server_address) or read_only_mode():
        return None
    return (f"This app listens on {server_address or 'every network interface'} and is not read-only: anyone on "
            "the network can run benchmarks, start the embedded engine, change settings and delete runs. To share "
            "it safely, restart it with ENVIROLLM_READ_ONLY=1 (see README).")
