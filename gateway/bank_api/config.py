"""Gateway configuration: from a profile.json (as the network tool writes it), a file, or env.

Precedence, lowest first: defaults, values derived from the profile, the config file
(``BANK_API_CONFIG_FILE``, JSON or YAML), then ``BANK_API_*`` environment variables.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from gateway.bank_api.fx import DEFAULT_RATES

ENV_PREFIX = "BANK_API_"


class ConfigError(ValueError):
    """The configuration is incomplete or malformed; the message names the setting."""


BANK = "bank"
REGULATOR = "regulator"
ROLES = (BANK, REGULATOR)


@dataclass(frozen=True)
class GatewayConfig:
    msp_id: str = ""
    # Which gateway this is: a bank's (accounts, payments, treasury, webhooks) or the regulator's
    # (oversight views, corridor policy, alerts). The profile's org kind sets it.
    role: str = BANK
    profile_path: str | None = None
    database_url: str = "sqlite://"
    operator_key_file: str | None = None
    channel: str = "tokens"
    chaincode: str = "deposit_token"
    host: str = "127.0.0.1"
    port: int = 8080
    # The HTTP server (server.py): request threads, open connections, seconds an idle one is kept.
    http_threads: int = 64
    http_connection_limit: int = 1000
    http_idle_timeout_seconds: float = 30.0
    # Token buckets (ratelimit.py): requests per second and burst, per API key and per client
    # address; a rate of 0 turns that limit off.
    rate_limit_key_per_second: float = 100.0
    rate_limit_key_burst: int = 200
    rate_limit_client_per_second: float = 500.0
    rate_limit_client_burst: int = 1000
    # Overload (docs/decisions/0032): write requests (POST/PUT/PATCH/DELETE under /v1) handled at
    # once; one more is answered 503 `overloaded` with Retry-After before any work. Below http_threads
    # so that reads, health checks and the operator's recovery actions (never counted) keep threads;
    # 0 turns the cap off. Payment requests waiting for their group (decision 0038) hold a place
    # each but no CPU: 12 places capped a gateway at about 12 payments per commit latency.
    max_concurrent_writes: int = 48
    # Submissions the gateway's Fabric connection has in flight at once (HTTP writes and the
    # follower's completions together), from endorsement until commit; one more waits up to
    # ledger_in_flight_wait_seconds for a place, then is answered 503 `overloaded`. 0: no bound.
    ledger_max_in_flight: int = 64
    ledger_in_flight_wait_seconds: float = 0.5
    # Background work started with the app (a separate `follow` process can do it instead).
    follow_events: bool = False
    deliver_webhooks: bool = False
    # The bank's standing policy on the regulator's disclosure requests: approve them on its own
    # (checked every disclosure_poll_seconds), or leave them to an operator (the default).
    disclosure_standing_approval: bool = False
    disclosure_poll_seconds: float = 10.0
    # Seconds an initiated outgoing payment may wait for the payee bank before we refund it.
    payment_timeout_seconds: int = 300
    # The payment sweeper's pass, which also runs the standing orders that are due (standing_orders.py).
    sweep_interval_seconds: float = 20.0
    # The sweeper folds a token class's supply changes into one once it has this many (at most
    # 1000 per transaction), so that reading the supply stays cheap as payments accumulate.
    supply_fold_threshold: int = 500
    # Test networks only: the standing-order scheduler's clock runs this many seconds ahead, so a
    # test restarts a gateway a day "later" to make the next daily run due. Never set in production.
    standing_order_clock_offset_seconds: float = 0.0
    # Incoming payments younger than this are left to the follower by the sweeper.
    sweep_grace_seconds: float = 30.0
    # Events the follower handles at once. Each completion waits about a second for its block
    # under load, so this caps incoming payments at roughly this many per second; 8 capped a
    # bank near 8/s while its peer had CPU to spare (docs/benchmarks.md).
    follower_concurrency: int = 64
    # Most incoming payments one completion transaction carries: completions ready while others are
    # in flight go together (docs/decisions/0037). 1 to 50; 1 completes each on its own.
    completion_group: int = 50
    # Most outgoing payments one initiation transaction carries: payment requests that arrive while
    # others are in flight go together (docs/decisions/0038). 1 to 50; 1 initiates each on its own.
    initiation_group: int = 50
    # Seconds a claimed idempotency key stays locked before a retry may take the request over.
    idempotency_lease_seconds: float = 30.0
    idempotency_wait_seconds: float = 25.0
    # Deadlines for one ledger call, so a dead peer gives 503 instead of a hang.
    evaluate_timeout_seconds: float = 10.0
    submit_timeout_seconds: float = 30.0
    # Seconds a write waits for its commit before it is looked up on the ledger and, when not there,
    # submitted again (its orderer may have died with it); within submit_timeout_seconds in all.
    commit_wait_seconds: float = 5.0
    # /readyz (readiness.py): whether the peer must see every other bank's peer (else one will do),
    # and how many blocks it may be behind the channel.
    readiness_requires_all_banks: bool = False
    readiness_max_blocks_behind: int = 10
    fx_rates: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_RATES))
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 8
    # Webhook URLs must be http(s); only these hosts are allowed when set (empty: any host).
    webhook_allowed_hosts: tuple[str, ...] = ()
    # Addresses, networks (CIDR) or host names webhooks may reach although they are loopback,
    # private or link-local (refused otherwise, see egress.py), e.g. a receiver on the bank's LAN.
    webhook_allowed_targets: tuple[str, ...] = ()
    log_level: str = "INFO"
    # Test networks only: a JSON file naming payment actions to hold (faults.py); never set in production.
    fault_file: str | None = None
    # The web console (console/): the file with the secret that encrypts its session cookies and
    # signs its forms, made on first start; unset, console.secret beside the operator key file.
    console_secret_file: str | None = None
    # Minutes a console session may sit unused before it ends (it ends 12 hours after login anyway).
    console_idle_minutes: int = 30

    @classmethod
    def from_profile(cls, profile_path: str, msp_id: str, **overrides: Any) -> GatewayConfig:
        """The settings the network tool's profile.json implies for one bank."""
        profile = _read_json(profile_path)
        orgs = profile.get("orgs")
        if not isinstance(orgs, dict) or msp_id not in orgs:
            raise ConfigError(f"profile {profile_path} has no org {msp_id!r}")
        org = orgs[msp_id]
        kind = org.get("kind", BANK)
        if kind not in ROLES:
            raise ConfigError(f"{msp_id} is a {kind!r} org; gateways run for a bank or the regulator")
        values: dict[str, Any] = {
            "msp_id": msp_id,
            "role": kind,
            "profile_path": str(Path(profile_path).resolve()),
        }
        if isinstance(profile.get("channel"), str):
            values["channel"] = profile["channel"]
        key_file = org.get("operator_key_file")
        if isinstance(key_file, str) and key_file:
            values["operator_key_file"] = key_file
            values["database_url"] = "sqlite:///" + str(Path(key_file).parent / "bank_api.sqlite")
        else:
            state_dir = profile.get("state_dir") or str(Path(profile_path).parent)
            gateway_dir = Path(state_dir) / "gateways" / msp_id
            values["operator_key_file"] = str(gateway_dir / "operator.key")
            values["database_url"] = "sqlite:///" + str(gateway_dir / "bank_api.sqlite")
        allowed = org.get("webhook_allowed_targets")
        if isinstance(allowed, list):
            values["webhook_allowed_targets"] = tuple(str(item) for item in allowed)
        url = org.get("gateway_url")
        if isinstance(url, str) and url:
            parsed = urlparse(url)
            if parsed.hostname:
                values["host"] = parsed.hostname
            if parsed.port:
                values["port"] = parsed.port
        values.update(overrides)
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GatewayConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        coerced = {name: _coerce(name, known[name].type, value) for name, value in values.items()}
        if coerced.get("role", BANK) not in ROLES:
            raise ConfigError(f"setting role must be one of {', '.join(ROLES)}, not {coerced['role']!r}")
        return cls(**coerced)

    @classmethod
    def env_settings(cls, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The settings file (``BANK_API_CONFIG_FILE``), then the ``BANK_API_*`` variables, unparsed."""
        env = os.environ if environ is None else environ
        settings: dict[str, Any] = {}
        config_file = env.get(ENV_PREFIX + "CONFIG_FILE")
        if config_file:
            settings.update(_read_settings_file(config_file))
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                settings[f.name] = raw
        return settings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewayConfig:
        """Profile (BANK_API_PROFILE + BANK_API_MSP_ID), then file, then the other BANK_API_* vars."""
        env = os.environ if environ is None else environ
        settings = cls.env_settings(env)
        # Short aliases: BANK_API_PROFILE and BANK_API_MSP.
        for alias, name in (("PROFILE", "profile_path"), ("MSP", "msp_id")):
            if env.get(ENV_PREFIX + alias):
                settings.setdefault(name, env[ENV_PREFIX + alias])
        profile = settings.pop("profile_path", None)
        if profile:
            msp = settings.pop("msp_id", None)
            if not msp:
                raise ConfigError("BANK_API_MSP is required with BANK_API_PROFILE")
            return cls.from_profile(str(profile), str(msp), **settings)
        return cls.from_mapping(settings)

    def with_overrides(self, **overrides: Any) -> GatewayConfig:
        return replace(self, **overrides)


def _read_json(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def _read_settings_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON, so both work
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is neither valid YAML nor JSON") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    return data


def _coerce(name: str, annotation: object, value: Any) -> Any:
    text = str(annotation)
    try:
        if text == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if text == "int":
            return int(value)
        if text == "float":
            return float(value)
        if text.startswith("Mapping"):
            if isinstance(value, Mapping):
                return {str(k): str(v) for k, v in value.items()}
            # "USD/HKD=7.8,USD/SGD=1.34"
            pairs = [item.split("=", 1) for item in str(value).split(",") if item.strip()]
            return {k.strip(): v.strip() for k, v in pairs}
        if text.startswith("tuple"):
            if isinstance(value, list | tuple):
                return tuple(str(v) for v in value)
            return tuple(v.strip() for v in str(value).split(",") if v.strip())
        if text.startswith("str | None"):
            return None if value is None else str(value)
        return str(value) if text == "str" else value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name} has a bad value {value!r}") from exc
