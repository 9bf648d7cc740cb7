"""Settings: one frozen object read from `STREAM_*` environment variables.

Only `STREAM_*` names are read (Faust's own names such as `BROKER_URL` or
`WEB_PORT` are not, and `stream.app` passes every Faust option explicitly
so that they cannot leak in by accident). A bad value fails fast with the
variable's name in the message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import orjson

from stream.domain.clv import LtvParams
from stream.domain.contacts import ContactRules
from stream.domain.cooccurrence import DEFAULT_CAPACITY
from stream.domain.suggestions import SuggestionRules

T = TypeVar("T")


DEFAULT_LTV_PARAMS = Path(__file__).with_name("ltv_params.json")
_SUGGEST = SuggestionRules()
_CONTACT = ContactRules()


def load_ltv_params(path: Path | None) -> LtvParams:
    """The configured params file, or the packaged default (fitted on CDNOW, in days)."""
    return LtvParams.from_json(orjson.loads((path or DEFAULT_LTV_PARAMS).read_bytes()))


class SettingsError(ValueError):
    """A `STREAM_*` variable is missing or malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names; each one configurable (`STREAM_TOPIC_<NAME>`)."""

    cart: str = "cart-events"
    purchase: str = "purchase-events"
    subscription: str = "subscription-events"
    suggestions: str = "cross-sell-suggestions"
    triggers: str = "cross-sell-triggers"
    customer_ltv: str = "customer-ltv"
    item_neighbors: str = "item-neighbors"
    dead_letters: str = "dead-letters"
    # Internal: orders' baskets routed to the partitions of their items'
    # rows, so pair counts are partitioned by item rather than by customer.
    item_baskets: str = "cross-sell-item-baskets"

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.cart, self.purchase, self.subscription)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (
            self.suggestions,
            self.triggers,
            self.customer_ltv,
            self.item_neighbors,
            self.dead_letters,
        )

    @property
    def compacted(self) -> frozenset[str]:
        """Topics that hold the latest record per key (`cleanup.policy=compact`)."""
        return frozenset({self.customer_ltv, self.item_neighbors})


_TOPIC_VARS = {
    "cart": "STREAM_TOPIC_CART_EVENTS",
    "purchase": "STREAM_TOPIC_PURCHASE_EVENTS",
    "subscription": "STREAM_TOPIC_SUBSCRIPTION_EVENTS",
    "suggestions": "STREAM_TOPIC_SUGGESTIONS",
    "triggers": "STREAM_TOPIC_TRIGGERS",
    "customer_ltv": "STREAM_TOPIC_CUSTOMER_LTV",
    "item_neighbors": "STREAM_TOPIC_ITEM_NEIGHBORS",
    "dead_letters": "STREAM_TOPIC_DEAD_LETTERS",
    "item_baskets": "STREAM_TOPIC_ITEM_BASKETS",
}


@dataclass(frozen=True, slots=True)
class Security:
    """Kafka client security for production clusters (SASL and/or TLS).

    `protocol` is Kafka's `security.protocol`: PLAINTEXT, SSL, SASL_PLAINTEXT
    or SASL_SSL; `sasl_mechanism` PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment."""

    broker: str | None = None
    partitions: int = 4
    data_dir: Path = Path("data")
    web_host: str = "0.0.0.0"
    web_port: int = 6066
    store: str = "memory://"
    decay_half_life_days: float = 0.0
    ltv_params: Path | None = None
    renewal_windows_days: tuple[int, ...] = (14, 3)
    # The rule defaults live with the rules (stream/domain): one place to change them.
    max_suggestions: int = _SUGGEST.limit
    neighbor_capacity: int = DEFAULT_CAPACITY
    min_pair_count: float = _SUGGEST.min_count
    min_confidence: float = _SUGGEST.min_confidence
    min_lift: float = _SUGGEST.min_lift
    rebuy_window_days: float = _SUGGEST.rebuy_window_days
    suggestion_cooldown_hours: float = _SUGGEST.cooldown_hours
    max_shows: int = _SUGGEST.max_shows
    prior_baskets: float = _SUGGEST.prior_baskets
    holdout_share: float = 0.0
    plan_ladder: tuple[str, ...] = ()
    trigger_daily_cap: int = _CONTACT.daily_cap
    offer_cooldown_hours: float = _CONTACT.offer_cooldown_hours
    attribution_days: float = _CONTACT.attribution_days
    ltv_rescore_days: float = 7.0
    rank_quantiles: tuple[float, float] = (0.5, 0.5)
    app_id: str = "cross-sell-stream"
    live_clock: bool = False
    # How long a fetch may wait at the broker for records: the floor of
    # add-to-suggestion latency on a quiet stream (Faust's own value is 1.5 s).
    fetch_max_wait_ms: int = 10
    # How often table writes' changelog records (the last per key) are sent;
    # also before every offset commit (stream/changelog.py).
    changelog_interval_ms: int = 200
    # How long a batch stays open for more events while more keep coming
    # (stream/batches.py): CPU an event against latency under load.
    batch_wait_ms: int = 2
    # How long the producer holds a partition's records for more to join
    # them in one request (0: sent as soon as no request is in flight).
    producer_linger_ms: int = 5
    # How long the producer tries to deliver a record before it gives up:
    # then the worker commits no more offsets and crashes (stream.kafka.Deliveries).
    producer_request_timeout_s: float = 1200.0
    topics: Topics = field(default_factory=Topics)
    security: Security = field(default_factory=Security)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `STREAM_*` variables (default `os.environ`); raise `SettingsError`."""
        env = os.environ if environ is None else environ
        unknown = sorted(k for k in env if k.startswith("STREAM_") and k not in _KNOWN)
        if unknown:
            known = ", ".join(sorted(_KNOWN))
            raise SettingsError(f"unknown setting {unknown[0]} (known: {known})")
        defaults = cls()
        settings = cls(
            broker=_get(env, "STREAM_BROKER", _broker_url, None),
            partitions=_get(env, "STREAM_PARTITIONS", _positive_int, defaults.partitions),
            data_dir=_get(env, "STREAM_DATA_DIR", Path, defaults.data_dir),
            web_host=_get(env, "STREAM_WEB_HOST", _nonempty, defaults.web_host),
            web_port=_get(env, "STREAM_WEB_PORT", _port, defaults.web_port),
            store=_get(env, "STREAM_STORE", _store_url, defaults.store),
            decay_half_life_days=_get(env, "STREAM_DECAY_HALF_LIFE_DAYS", _non_negative_float, 0.0),
            ltv_params=_get(env, "STREAM_LTV_PARAMS", _json_file, None),
            renewal_windows_days=_get(
                env, "STREAM_RENEWAL_WINDOWS_DAYS", _day_list, defaults.renewal_windows_days
            ),
            max_suggestions=_get(
                env, "STREAM_MAX_SUGGESTIONS", _positive_int, defaults.max_suggestions
            ),
            neighbor_capacity=_get(
                env, "STREAM_NEIGHBOR_CAPACITY", _positive_int, defaults.neighbor_capacity
            ),
            min_pair_count=_get(
                env, "STREAM_MIN_PAIR_COUNT", _non_negative_float, defaults.min_pair_count
            ),
            min_confidence=_get(env, "STREAM_MIN_CONFIDENCE", _fraction, defaults.min_confidence),
            min_lift=_get(env, "STREAM_MIN_LIFT", _non_negative_float, defaults.min_lift),
            rebuy_window_days=_get(env, "STREAM_REBUY_WINDOW_DAYS", _non_negative_float, 0.0),
            suggestion_cooldown_hours=_get(
                env,
                "STREAM_SUGGESTION_COOLDOWN_HOURS",
                _non_negative_float,
                defaults.suggestion_cooldown_hours,
            ),
            max_shows=_get(env, "STREAM_MAX_SHOWS", _positive_int, defaults.max_shows),
            prior_baskets=_get(
                env, "STREAM_PRIOR_BASKETS", _non_negative_float, defaults.prior_baskets
            ),
            holdout_share=_get(env, "STREAM_HOLDOUT_SHARE", _share, 0.0),
            plan_ladder=_get(env, "STREAM_PLAN_LADDER", _names, ()),
            trigger_daily_cap=_get(
                env, "STREAM_TRIGGER_DAILY_CAP", _positive_int, defaults.trigger_daily_cap
            ),
            offer_cooldown_hours=_get(
                env,
                "STREAM_OFFER_COOLDOWN_HOURS",
                _non_negative_float,
                defaults.offer_cooldown_hours,
            ),
            attribution_days=_get(
                env, "STREAM_ATTRIBUTION_DAYS", _positive_float, defaults.attribution_days
            ),
            ltv_rescore_days=_get(
                env, "STREAM_LTV_RESCORE_DAYS", _positive_float, defaults.ltv_rescore_days
            ),
            rank_quantiles=_get(env, "STREAM_RANK_QUANTILES", _quantile_pair, (0.5, 0.5)),
            app_id=_get(env, "STREAM_APP_ID", _nonempty, defaults.app_id),
            live_clock=_get(env, "STREAM_LIVE_CLOCK", _boolean, False),
            fetch_max_wait_ms=_get(
                env, "STREAM_FETCH_MAX_WAIT_MS", _positive_int, defaults.fetch_max_wait_ms
            ),
            changelog_interval_ms=_get(
                env,
                "STREAM_CHANGELOG_INTERVAL_MS",
                _positive_int,
                defaults.changelog_interval_ms,
            ),
            batch_wait_ms=_get(env, "STREAM_BATCH_WAIT_MS", _positive_int, defaults.batch_wait_ms),
            producer_linger_ms=_get(
                env, "STREAM_PRODUCER_LINGER_MS", _non_negative_int, defaults.producer_linger_ms
            ),
            producer_request_timeout_s=_get(
                env,
                "STREAM_PRODUCER_REQUEST_TIMEOUT_S",
                _positive_float,
                defaults.producer_request_timeout_s,
            ),
            topics=Topics(
                **{
                    name: _get(env, var, _nonempty, getattr(defaults.topics, name))
                    for name, var in _TOPIC_VARS.items()
                }
            ),
            security=Security(
                protocol=_get(env, "STREAM_SECURITY_PROTOCOL", _protocol, "PLAINTEXT"),
                sasl_mechanism=_get(env, "STREAM_SASL_MECHANISM", _mechanism, None),
                sasl_username=env.get("STREAM_SASL_USERNAME") or None,
                sasl_password=env.get("STREAM_SASL_PASSWORD") or None,
                ssl_cafile=_get(env, "STREAM_SSL_CAFILE", _existing_file, None),
                ssl_certfile=_get(env, "STREAM_SSL_CERTFILE", _existing_file, None),
                ssl_keyfile=_get(env, "STREAM_SSL_KEYFILE", _existing_file, None),
            ),
        )
        security = settings.security
        if security.protocol.startswith("SASL_") and not (
            security.sasl_username and security.sasl_password
        ):
            raise SettingsError(
                f"STREAM_SECURITY_PROTOCOL={security.protocol} needs STREAM_SASL_USERNAME and "
                "STREAM_SASL_PASSWORD"
            )
        return settings

    @property
    def bootstrap_servers(self) -> list[str]:
        """`host:port` list for plain aiokafka clients (needs `broker` set)."""
        if self.broker is None:
            raise SettingsError("STREAM_BROKER is not set")
        return _servers(self.broker)

    @property
    def broker_url(self) -> str:
        """What the worker connects to: `broker`, else Faust's default (DEFAULT_BROKER)."""
        return self.broker or DEFAULT_BROKER

    @property
    def worker_servers(self) -> list[str]:
        """`broker_url` as a `host:port` list, for the worker's own aiokafka clients."""
        return _servers(self.broker_url)


def _servers(broker: str) -> list[str]:
    return [part.removeprefix("kafka://") for part in broker.split(",")]


_KNOWN = frozenset(
    {
        "STREAM_BROKER",
        "STREAM_PARTITIONS",
        "STREAM_DATA_DIR",
        "STREAM_WEB_HOST",
        "STREAM_WEB_PORT",
        "STREAM_STORE",
        "STREAM_DECAY_HALF_LIFE_DAYS",
        "STREAM_LTV_PARAMS",
        "STREAM_RENEWAL_WINDOWS_DAYS",
        "STREAM_MAX_SUGGESTIONS",
        "STREAM_HOLDOUT_SHARE",
        "STREAM_LTV_RESCORE_DAYS",
        "STREAM_PLAN_LADDER",
        "STREAM_TRIGGER_DAILY_CAP",
        "STREAM_OFFER_COOLDOWN_HOURS",
        "STREAM_ATTRIBUTION_DAYS",
        "STREAM_RANK_QUANTILES",
        "STREAM_NEIGHBOR_CAPACITY",
        "STREAM_MIN_PAIR_COUNT",
        "STREAM_MIN_CONFIDENCE",
        "STREAM_MIN_LIFT",
        "STREAM_REBUY_WINDOW_DAYS",
        "STREAM_SUGGESTION_COOLDOWN_HOURS",
        "STREAM_MAX_SHOWS",
        "STREAM_PRIOR_BASKETS",
        "STREAM_APP_ID",
        "STREAM_LIVE_CLOCK",
        "STREAM_FETCH_MAX_WAIT_MS",
        "STREAM_CHANGELOG_INTERVAL_MS",
        "STREAM_BATCH_WAIT_MS",
        "STREAM_PRODUCER_LINGER_MS",
        "STREAM_PRODUCER_REQUEST_TIMEOUT_S",
        "STREAM_SECURITY_PROTOCOL",
        "STREAM_SASL_MECHANISM",
        "STREAM_SASL_USERNAME",
        "STREAM_SASL_PASSWORD",
        "STREAM_SSL_CAFILE",
        "STREAM_SSL_CERTFILE",
        "STREAM_SSL_KEYFILE",
        *_TOPIC_VARS.values(),
    }
)


def _get(env: Mapping[str, str], key: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, OSError) as exc:
        raise SettingsError(f"{key}={raw!r}: {exc}") from None


def _nonempty(raw: str) -> str:
    return raw


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be an integer >= 1")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port (1-65535)")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def _share(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < 1:
        raise ValueError("must be a fraction in [0, 1)")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be a fraction in [0, 1]")
    return value


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _day_list(raw: str) -> tuple[int, ...]:
    days = tuple(sorted({_positive_int(part.strip()) for part in raw.split(",")}, reverse=True))
    return days


DEFAULT_BROKER: Final = "kafka://localhost:9092"  # Faust's, where STREAM_BROKER is unset
_HOST: Final = re.compile(r"[A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+\]")  # name, IPv4, [IPv6]


def _broker_url(raw: str) -> str:
    urls = [part.strip() for part in raw.split(",")]
    for url in urls:
        host, _, port = url.removeprefix("kafka://").rpartition(":")
        if (
            not _HOST.fullmatch(host)  # not PLAINTEXT://host, Kafka's listener form
            or not port.isascii()
            or not port.isdigit()
            or not 0 < int(port) < 65536
        ):
            raise ValueError("expected kafka://host:port (port 1-65535), comma-separated")
    return ",".join(url if url.startswith("kafka://") else f"kafka://{url}" for url in urls)


def _store_url(raw: str) -> str:
    if raw not in {"memory://", "rocksdb://"}:
        raise ValueError("must be memory:// or rocksdb://")
    return raw


def _json_file(raw: str) -> Path:
    """A BG/NBD + Gamma-Gamma params file (DESIGN.md format), checked now."""
    path = Path(raw)
    content = orjson.loads(path.read_bytes())
    if not isinstance(content, dict):
        raise ValueError(f"{path} must hold a JSON object")
    LtvParams.from_json(content)
    return path


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(","))
    if any(not name for name in names) or len(set(names)) != len(names):
        raise ValueError("must be distinct, non-empty names, comma-separated (lowest first)")
    return names


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not 0 < value < float("inf"):
        raise ValueError("must be a finite number > 0")
    return value


def _quantile_pair(raw: str) -> tuple[float, float]:
    parts = [float(part) for part in raw.split(",")]
    if len(parts) != 2 or not all(0 < q < 1 for q in parts):
        raise ValueError("must be two quantiles in (0, 1): realized,predicted (e.g. 0.5,0.5)")
    return parts[0], parts[1]


def _existing_file(raw: str) -> Path:
    path = Path(raw)
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    return path


def _protocol(raw: str) -> str:
    value = raw.upper()
    if value not in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}:
        raise ValueError("must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    return value


def _mechanism(raw: str) -> str:
    value = raw.upper()
    if value not in {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}:
        raise ValueError("must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    return value
