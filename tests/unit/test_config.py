"""stream.config: Settings.from_env reads STREAM_* variables and fails fast on bad ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stream.config import _KNOWN, Security, Settings, SettingsError, Topics, load_ltv_params
from stream.domain.suggestions import SuggestionRules

FILE = "<file>"  # stands for an existing file made in tmp_path
JSON_OBJECT = (
    '{"bgnbd": {"r": 0.2, "alpha": 4.0, "a": 0.8, "b": 2.4},'
    ' "gamma_gamma": {"p": 6.0, "q": 3.7, "v": 15.0}, "clv_months": 12}'
)


def resolve(raw: str, tmp_path: Path, content: str = JSON_OBJECT) -> str:
    """Replace FILE by the path of a real file holding `content`."""
    if raw != FILE:
        return raw
    path = tmp_path / "file.json"
    path.write_text(content)
    return str(path)


def attr(settings: Settings, dotted: str) -> Any:
    value: Any = settings
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


def test_defaults() -> None:
    """With no STREAM_* variable every setting has its documented default."""
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings == Settings(
        broker=None,
        partitions=4,
        data_dir=Path("data"),
        web_host="0.0.0.0",
        web_port=6066,
        store="memory://",
        decay_half_life_days=0.0,
        ltv_params=None,
        renewal_windows_days=(14, 3),
        max_suggestions=10,
        neighbor_capacity=100,
        min_pair_count=2.0,
        min_confidence=0.02,
        min_lift=1.0,
        rebuy_window_days=0.0,
        suggestion_cooldown_hours=24.0,
        max_shows=3,
        prior_baskets=300.0,
        holdout_share=0.0,
        app_id="cross-sell-stream",
        live_clock=False,
        topics=Topics(
            cart="cart-events",
            purchase="purchase-events",
            subscription="subscription-events",
            suggestions="cross-sell-suggestions",
            triggers="cross-sell-triggers",
            customer_ltv="customer-ltv",
            item_neighbors="item-neighbors",
            dead_letters="dead-letters",
            item_baskets="cross-sell-item-baskets",
        ),
        security=Security(protocol="PLAINTEXT"),
    )


def test_suggestion_defaults_match_the_rules_defaults() -> None:
    """The settings' suggestion defaults are the domain's SuggestionRules defaults."""
    settings, rules = Settings(), SuggestionRules()
    assert (
        settings.max_suggestions,
        settings.min_pair_count,
        settings.min_confidence,
        settings.min_lift,
        settings.rebuy_window_days,
        settings.suggestion_cooldown_hours,
        settings.max_shows,
        settings.prior_baskets,
    ) == (
        rules.limit,
        rules.min_count,
        rules.min_confidence,
        rules.min_lift,
        rules.rebuy_window_days,
        rules.cooldown_hours,
        rules.max_shows,
        rules.prior_baskets,
    )


def test_other_names_are_ignored() -> None:
    """Faust's own names and any other non-STREAM_ variable are not read."""
    env = {"BROKER_URL": "kafka://elsewhere:1", "WEB_PORT": "1", "PATH": "/bin", "stream_x": "1"}
    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_values_mean_default(blank: str) -> None:
    """An empty or all-blank value counts as unset."""
    env = {"STREAM_PARTITIONS": blank, "STREAM_BROKER": blank, "STREAM_TOPIC_CART_EVENTS": blank}
    assert Settings.from_env(env) == Settings()


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """from_env() without an argument reads the process environment."""
    for key in [k for k in os.environ if k.startswith("STREAM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STREAM_PARTITIONS", "7")
    assert Settings.from_env().partitions == 7


PARSED = [
    ("STREAM_BROKER", "localhost:9092", "broker", "kafka://localhost:9092"),
    ("STREAM_BROKER", "kafka://k1:9092", "broker", "kafka://k1:9092"),
    ("STREAM_BROKER", "k1:9092, kafka://k2:9093", "broker", "kafka://k1:9092,kafka://k2:9093"),
    ("STREAM_BROKER", "[::1]:9092", "broker", "kafka://[::1]:9092"),
    ("STREAM_BROKER", "shop_kafka_1:9092", "broker", "kafka://shop_kafka_1:9092"),  # compose v1
    (
        "STREAM_BROKER",
        "b-1.kafka.eu-west-1.example.com:9094",
        "broker",
        "kafka://b-1.kafka.eu-west-1.example.com:9094",
    ),
    ("STREAM_PARTITIONS", "8", "partitions", 8),
    ("STREAM_PARTITIONS", " 12 ", "partitions", 12),
    ("STREAM_PARTITIONS", "1", "partitions", 1),
    ("STREAM_DATA_DIR", "/var/lib/stream", "data_dir", Path("/var/lib/stream")),
    ("STREAM_WEB_HOST", "127.0.0.1", "web_host", "127.0.0.1"),
    ("STREAM_WEB_PORT", "1", "web_port", 1),
    ("STREAM_WEB_PORT", "65535", "web_port", 65535),
    ("STREAM_STORE", "rocksdb://", "store", "rocksdb://"),
    ("STREAM_STORE", "memory://", "store", "memory://"),
    ("STREAM_DECAY_HALF_LIFE_DAYS", "30", "decay_half_life_days", 30.0),
    ("STREAM_DECAY_HALF_LIFE_DAYS", "0.5", "decay_half_life_days", 0.5),
    ("STREAM_DECAY_HALF_LIFE_DAYS", "0", "decay_half_life_days", 0.0),
    ("STREAM_RENEWAL_WINDOWS_DAYS", "7", "renewal_windows_days", (7,)),
    # Sorted largest first, duplicates dropped.
    ("STREAM_RENEWAL_WINDOWS_DAYS", "3,14", "renewal_windows_days", (14, 3)),
    ("STREAM_RENEWAL_WINDOWS_DAYS", "3, 30 ,14,3", "renewal_windows_days", (30, 14, 3)),
    ("STREAM_MAX_SUGGESTIONS", "5", "max_suggestions", 5),
    ("STREAM_NEIGHBOR_CAPACITY", "50", "neighbor_capacity", 50),
    ("STREAM_NEIGHBOR_CAPACITY", "1", "neighbor_capacity", 1),
    ("STREAM_NEIGHBOR_CAPACITY", " 1000 ", "neighbor_capacity", 1000),
    ("STREAM_MIN_PAIR_COUNT", "3", "min_pair_count", 3.0),
    ("STREAM_MIN_PAIR_COUNT", "0.5", "min_pair_count", 0.5),  # decayed counts are fractional
    ("STREAM_MIN_PAIR_COUNT", "0", "min_pair_count", 0.0),
    ("STREAM_MIN_CONFIDENCE", "0.1", "min_confidence", 0.1),
    ("STREAM_MIN_CONFIDENCE", "0", "min_confidence", 0.0),
    ("STREAM_MIN_CONFIDENCE", "1", "min_confidence", 1.0),  # [0, 1]: 1 is allowed
    ("STREAM_MIN_LIFT", "1.5", "min_lift", 1.5),
    ("STREAM_MIN_LIFT", "0", "min_lift", 0.0),
    ("STREAM_MIN_LIFT", "20", "min_lift", 20.0),
    ("STREAM_REBUY_WINDOW_DAYS", "30", "rebuy_window_days", 30.0),
    ("STREAM_REBUY_WINDOW_DAYS", "0.5", "rebuy_window_days", 0.5),
    ("STREAM_REBUY_WINDOW_DAYS", "0", "rebuy_window_days", 0.0),
    ("STREAM_SUGGESTION_COOLDOWN_HOURS", "12", "suggestion_cooldown_hours", 12.0),
    ("STREAM_SUGGESTION_COOLDOWN_HOURS", "0.25", "suggestion_cooldown_hours", 0.25),
    ("STREAM_SUGGESTION_COOLDOWN_HOURS", "0", "suggestion_cooldown_hours", 0.0),
    ("STREAM_MAX_SHOWS", "5", "max_shows", 5),
    ("STREAM_MAX_SHOWS", "1", "max_shows", 1),
    ("STREAM_PRIOR_BASKETS", "1000", "prior_baskets", 1000.0),
    ("STREAM_PRIOR_BASKETS", "0", "prior_baskets", 0.0),  # 0: plain confidence, no prior
    ("STREAM_LTV_RESCORE_DAYS", "1.5", "ltv_rescore_days", 1.5),
    ("STREAM_PLAN_LADDER", "basic, plus,premium", "plan_ladder", ("basic", "plus", "premium")),
    ("STREAM_TRIGGER_DAILY_CAP", "5", "trigger_daily_cap", 5),
    ("STREAM_OFFER_COOLDOWN_HOURS", "0", "offer_cooldown_hours", 0.0),
    ("STREAM_ATTRIBUTION_DAYS", "14", "attribution_days", 14.0),
    ("STREAM_RANK_QUANTILES", "0.8,0.6", "rank_quantiles", (0.8, 0.6)),
    ("STREAM_HOLDOUT_SHARE", "0.1", "holdout_share", 0.1),
    ("STREAM_HOLDOUT_SHARE", "0", "holdout_share", 0.0),
    ("STREAM_HOLDOUT_SHARE", "0.999", "holdout_share", 0.999),
    ("STREAM_APP_ID", "shop-xsell", "app_id", "shop-xsell"),
    ("STREAM_LIVE_CLOCK", "true", "live_clock", True),
    ("STREAM_LIVE_CLOCK", "TRUE", "live_clock", True),
    ("STREAM_LIVE_CLOCK", "1", "live_clock", True),
    ("STREAM_LIVE_CLOCK", "yes", "live_clock", True),
    ("STREAM_LIVE_CLOCK", "On", "live_clock", True),
    ("STREAM_LIVE_CLOCK", "false", "live_clock", False),
    ("STREAM_LIVE_CLOCK", "0", "live_clock", False),
    ("STREAM_LIVE_CLOCK", "no", "live_clock", False),
    ("STREAM_LIVE_CLOCK", "OFF", "live_clock", False),
    ("STREAM_FETCH_MAX_WAIT_MS", "250", "fetch_max_wait_ms", 250),
    ("STREAM_CHANGELOG_INTERVAL_MS", "1000", "changelog_interval_ms", 1000),
    ("STREAM_BATCH_WAIT_MS", "10", "batch_wait_ms", 10),
    ("STREAM_PRODUCER_LINGER_MS", "0", "producer_linger_ms", 0),
    ("STREAM_PRODUCER_LINGER_MS", "20", "producer_linger_ms", 20),
    ("STREAM_PRODUCER_REQUEST_TIMEOUT_S", "60", "producer_request_timeout_s", 60.0),
    ("STREAM_PRODUCER_REQUEST_TIMEOUT_S", "2.5", "producer_request_timeout_s", 2.5),
    ("STREAM_SECURITY_PROTOCOL", "sasl_ssl", "security.protocol", "SASL_SSL"),
    ("STREAM_SECURITY_PROTOCOL", "SSL", "security.protocol", "SSL"),
    ("STREAM_SECURITY_PROTOCOL", "SASL_PLAINTEXT", "security.protocol", "SASL_PLAINTEXT"),
    ("STREAM_SASL_MECHANISM", "plain", "security.sasl_mechanism", "PLAIN"),
    ("STREAM_SASL_MECHANISM", "scram-sha-256", "security.sasl_mechanism", "SCRAM-SHA-256"),
    ("STREAM_SASL_MECHANISM", "SCRAM-SHA-512", "security.sasl_mechanism", "SCRAM-SHA-512"),
    ("STREAM_SASL_USERNAME", "svc-xsell", "security.sasl_username", "svc-xsell"),
    ("STREAM_SASL_PASSWORD", "s3cret", "security.sasl_password", "s3cret"),
    ("STREAM_TOPIC_CART_EVENTS", "shop.cart", "topics.cart", "shop.cart"),
    ("STREAM_TOPIC_PURCHASE_EVENTS", "shop.orders", "topics.purchase", "shop.orders"),
    ("STREAM_TOPIC_SUBSCRIPTION_EVENTS", "shop.subs", "topics.subscription", "shop.subs"),
    ("STREAM_TOPIC_SUGGESTIONS", "x.sugg", "topics.suggestions", "x.sugg"),
    ("STREAM_TOPIC_TRIGGERS", "x.trig", "topics.triggers", "x.trig"),
    ("STREAM_TOPIC_CUSTOMER_LTV", "x.ltv", "topics.customer_ltv", "x.ltv"),
    ("STREAM_TOPIC_ITEM_NEIGHBORS", "x.nb", "topics.item_neighbors", "x.nb"),
    ("STREAM_TOPIC_DEAD_LETTERS", "x.dlq", "topics.dead_letters", "x.dlq"),
    ("STREAM_TOPIC_ITEM_BASKETS", "x.baskets", "topics.item_baskets", "x.baskets"),
]
FILE_VARS = [
    ("STREAM_LTV_PARAMS", "ltv_params"),
    ("STREAM_SSL_CAFILE", "security.ssl_cafile"),
    ("STREAM_SSL_CERTFILE", "security.ssl_certfile"),
    ("STREAM_SSL_KEYFILE", "security.ssl_keyfile"),
]


def test_tables_cover_every_known_variable() -> None:
    """Every STREAM_* name the settings accept has a row in the parse tables above."""
    assert {row[0] for row in PARSED} | {var for var, _ in FILE_VARS} == _KNOWN


@pytest.mark.parametrize(("var", "raw", "field", "expected"), PARSED)
def test_each_variable_is_parsed(var: str, raw: str, field: str, expected: Any) -> None:
    """Each STREAM_* variable is parsed into its field, with the field's type."""
    env = {var: raw}
    if var == "STREAM_SECURITY_PROTOCOL" and raw.upper().startswith("SASL_"):
        env |= {"STREAM_SASL_USERNAME": "u", "STREAM_SASL_PASSWORD": "p"}  # SASL needs them
    settings = Settings.from_env(env)
    assert attr(settings, field) == expected
    assert type(attr(settings, field)) is type(expected)


@pytest.mark.parametrize(("var", "field"), FILE_VARS)
def test_file_variables_are_parsed(var: str, field: str, tmp_path: Path) -> None:
    """The file settings take the path of an existing file (a JSON object for LTV params)."""
    path = resolve(FILE, tmp_path)
    assert attr(Settings.from_env({var: path}), field) == Path(path)


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("STREAM_BROKER", "localhost"),  # no port
        ("STREAM_BROKER", "kafka://host:"),  # empty port
        ("STREAM_BROKER", "host:port"),  # port not a number
        ("STREAM_BROKER", ":9092"),  # no host
        ("STREAM_BROKER", "a:1,,b:2"),  # an empty entry
        ("STREAM_BROKER", "a:1,"),  # a trailing comma
        ("STREAM_BROKER", "PLAINTEXT://host:9092"),  # Kafka's listener form, not a client's
        ("STREAM_BROKER", "kafka://SASL_SSL://host:9092"),
        ("STREAM_BROKER", "tcp://host:9092"),
        ("STREAM_BROKER", "host name:9092"),
        ("STREAM_PARTITIONS", "0"),
        ("STREAM_PARTITIONS", "-1"),
        ("STREAM_PARTITIONS", "four"),
        ("STREAM_PARTITIONS", "1.5"),
        ("STREAM_WEB_PORT", "0"),
        ("STREAM_WEB_PORT", "65536"),
        ("STREAM_WEB_PORT", "http"),
        ("STREAM_STORE", "redis://"),
        ("STREAM_STORE", "memory"),
        ("STREAM_STORE", "ROCKSDB://"),
        ("STREAM_DECAY_HALF_LIFE_DAYS", "-1"),
        ("STREAM_DECAY_HALF_LIFE_DAYS", "inf"),
        ("STREAM_DECAY_HALF_LIFE_DAYS", "-inf"),
        ("STREAM_DECAY_HALF_LIFE_DAYS", "nan"),
        ("STREAM_DECAY_HALF_LIFE_DAYS", "a week"),
        ("STREAM_RENEWAL_WINDOWS_DAYS", "0"),
        ("STREAM_RENEWAL_WINDOWS_DAYS", "14,-3"),
        ("STREAM_RENEWAL_WINDOWS_DAYS", "14,,3"),
        ("STREAM_RENEWAL_WINDOWS_DAYS", "two weeks"),
        ("STREAM_RENEWAL_WINDOWS_DAYS", "14;3"),
        ("STREAM_MAX_SUGGESTIONS", "0"),
        ("STREAM_MAX_SUGGESTIONS", "ten"),
        ("STREAM_NEIGHBOR_CAPACITY", "0"),
        ("STREAM_NEIGHBOR_CAPACITY", "-5"),
        ("STREAM_NEIGHBOR_CAPACITY", "1.5"),
        ("STREAM_NEIGHBOR_CAPACITY", "many"),
        ("STREAM_MIN_PAIR_COUNT", "-1"),
        ("STREAM_MIN_PAIR_COUNT", "inf"),
        ("STREAM_MIN_PAIR_COUNT", "nan"),
        ("STREAM_MIN_PAIR_COUNT", "two"),
        ("STREAM_MIN_CONFIDENCE", "1.5"),
        ("STREAM_MIN_CONFIDENCE", "-0.1"),
        ("STREAM_MIN_CONFIDENCE", "nan"),
        ("STREAM_MIN_CONFIDENCE", "inf"),
        ("STREAM_MIN_CONFIDENCE", "5%"),
        ("STREAM_MIN_LIFT", "-0.5"),
        ("STREAM_MIN_LIFT", "inf"),
        ("STREAM_MIN_LIFT", "nan"),
        ("STREAM_MIN_LIFT", "high"),
        ("STREAM_REBUY_WINDOW_DAYS", "-1"),
        ("STREAM_REBUY_WINDOW_DAYS", "inf"),
        ("STREAM_REBUY_WINDOW_DAYS", "nan"),
        ("STREAM_REBUY_WINDOW_DAYS", "a month"),
        ("STREAM_SUGGESTION_COOLDOWN_HOURS", "-1"),
        ("STREAM_SUGGESTION_COOLDOWN_HOURS", "inf"),
        ("STREAM_SUGGESTION_COOLDOWN_HOURS", "nan"),
        ("STREAM_SUGGESTION_COOLDOWN_HOURS", "1h"),
        ("STREAM_MAX_SHOWS", "0"),
        ("STREAM_MAX_SHOWS", "-1"),
        ("STREAM_MAX_SHOWS", "2.5"),
        ("STREAM_MAX_SHOWS", "three"),
        ("STREAM_PRIOR_BASKETS", "-1"),
        ("STREAM_PRIOR_BASKETS", "inf"),
        ("STREAM_PRIOR_BASKETS", "many"),
        ("STREAM_LTV_RESCORE_DAYS", "0"),
        ("STREAM_PLAN_LADDER", "basic,,premium"),
        ("STREAM_PLAN_LADDER", "basic,basic"),
        ("STREAM_TRIGGER_DAILY_CAP", "0"),
        ("STREAM_OFFER_COOLDOWN_HOURS", "-1"),
        ("STREAM_ATTRIBUTION_DAYS", "0"),
        ("STREAM_LTV_RESCORE_DAYS", "inf"),
        ("STREAM_RANK_QUANTILES", "0.5"),
        ("STREAM_RANK_QUANTILES", "0.5,1.0"),
        ("STREAM_RANK_QUANTILES", "0,0.5"),
        ("STREAM_HOLDOUT_SHARE", "1"),
        ("STREAM_HOLDOUT_SHARE", "1.5"),
        ("STREAM_HOLDOUT_SHARE", "-0.1"),
        ("STREAM_HOLDOUT_SHARE", "nan"),
        ("STREAM_HOLDOUT_SHARE", "10%"),
        ("STREAM_LIVE_CLOCK", "maybe"),
        ("STREAM_LIVE_CLOCK", "2"),
        ("STREAM_FETCH_MAX_WAIT_MS", "0"),
        ("STREAM_FETCH_MAX_WAIT_MS", "1.5"),
        ("STREAM_CHANGELOG_INTERVAL_MS", "0"),
        ("STREAM_CHANGELOG_INTERVAL_MS", "-200"),
        ("STREAM_BATCH_WAIT_MS", "0"),
        ("STREAM_BATCH_WAIT_MS", "2.5"),
        ("STREAM_PRODUCER_LINGER_MS", "-1"),
        ("STREAM_PRODUCER_LINGER_MS", "0.5"),
        ("STREAM_PRODUCER_REQUEST_TIMEOUT_S", "0"),
        ("STREAM_PRODUCER_REQUEST_TIMEOUT_S", "-30"),
        ("STREAM_PRODUCER_REQUEST_TIMEOUT_S", "soon"),
        ("STREAM_SECURITY_PROTOCOL", "TLS"),
        ("STREAM_SASL_MECHANISM", "GSSAPI"),
        ("STREAM_SSL_CAFILE", "/no/such/ca.pem"),
        ("STREAM_SSL_CERTFILE", "/no/such/cert.pem"),
        ("STREAM_SSL_KEYFILE", "/no/such/key.pem"),
    ],
)
def test_malformed_value_names_the_variable(var: str, raw: str) -> None:
    """A malformed value raises SettingsError whose message starts with the variable's name."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({var: raw})
    assert str(caught.value).startswith(f"{var}=")
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "content",
    [
        "[1, 2]",  # an array
        "3",  # a number
        '"params"',  # a string
        "null",
        "{not json",  # not JSON at all
        "",  # empty file
    ],
)
def test_ltv_params_must_be_a_json_object(content: str, tmp_path: Path) -> None:
    """STREAM_LTV_PARAMS pointing to anything but a JSON object fails, naming the variable."""
    path = resolve(FILE, tmp_path, content)
    with pytest.raises(SettingsError, match=r"^STREAM_LTV_PARAMS="):
        Settings.from_env({"STREAM_LTV_PARAMS": path})


@pytest.mark.parametrize("missing", ["no-such-file.json", "dir"])
def test_ltv_params_must_be_an_existing_file(missing: str, tmp_path: Path) -> None:
    """STREAM_LTV_PARAMS naming a missing file or a directory fails, naming the variable."""
    (tmp_path / "dir").mkdir()
    with pytest.raises(SettingsError, match=r"^STREAM_LTV_PARAMS="):
        Settings.from_env({"STREAM_LTV_PARAMS": str(tmp_path / missing)})


def test_ssl_file_must_not_be_a_directory(tmp_path: Path) -> None:
    """An SSL file setting naming a directory fails, naming the variable."""
    with pytest.raises(SettingsError, match=r"^STREAM_SSL_CAFILE="):
        Settings.from_env({"STREAM_SSL_CAFILE": str(tmp_path)})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STREAM_PARTITION": "4"}, "STREAM_PARTITION"),  # a typo of STREAM_PARTITIONS
        ({"STREAM_BROKER_URL": "kafka://a:1"}, "STREAM_BROKER_URL"),
        ({"STREAM_TOPIC_CART": "c"}, "STREAM_TOPIC_CART"),
        # Rejected before any value is parsed; the first unknown name in sorted order.
        ({"STREAM_ZZZ": "1", "STREAM_AAA": "1", "STREAM_PARTITIONS": "x"}, "STREAM_AAA"),
    ],
)
def test_unknown_stream_names_are_rejected(env: dict[str, str], named: str) -> None:
    """An unknown STREAM_* name fails, naming it."""
    with pytest.raises(SettingsError, match=f"^unknown setting {named} "):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("raw", "servers"),
    [
        ("localhost:9092", ["localhost:9092"]),
        ("kafka://k1:9092", ["k1:9092"]),
        ("kafka://k1:9092,k2:9093", ["k1:9092", "k2:9093"]),
        ("k1:9092 , kafka://k2:9093", ["k1:9092", "k2:9093"]),
    ],
)
def test_bootstrap_servers_strip_kafka_scheme(raw: str, servers: list[str]) -> None:
    """bootstrap_servers is the host:port list without kafka://."""
    assert Settings.from_env({"STREAM_BROKER": raw}).bootstrap_servers == servers


def test_bootstrap_servers_without_broker() -> None:
    """bootstrap_servers without STREAM_BROKER raises SettingsError naming it."""
    with pytest.raises(SettingsError, match="STREAM_BROKER"):
        _ = Settings().bootstrap_servers


def test_topic_groups() -> None:
    """inputs, outputs and compacted name the right topics, following renames."""
    topics = Settings.from_env(
        {"STREAM_TOPIC_CART_EVENTS": "c", "STREAM_TOPIC_CUSTOMER_LTV": "ltv"}
    ).topics
    assert topics.inputs == ("c", "purchase-events", "subscription-events")
    assert topics.outputs == (
        "cross-sell-suggestions",
        "cross-sell-triggers",
        "ltv",
        "item-neighbors",
        "dead-letters",
    )
    assert topics.compacted == frozenset({"ltv", "item-neighbors"})


def test_password_is_not_in_repr() -> None:
    """The SASL password does not show in the settings' repr."""
    settings = Settings.from_env({"STREAM_SASL_PASSWORD": "s3cret-value"})
    assert settings.security.sasl_password == "s3cret-value"
    assert "s3cret-value" not in repr(settings)


@pytest.mark.parametrize("raw", ["localhost:99999", "localhost:0", "localhost:²"])
def test_broker_port_must_be_a_tcp_port(raw: str) -> None:
    """A broker port outside 1-65535 fails fast like STREAM_WEB_PORT does, naming the variable."""
    with pytest.raises(SettingsError, match=r"^STREAM_BROKER="):
        Settings.from_env({"STREAM_BROKER": raw})


@pytest.mark.parametrize(
    "content",
    [
        '{"bgnbd": {"r": 0.2, "alpha": 4.0, "a": 0.8, "b": 2.4}}',  # no gamma_gamma
        JSON_OBJECT.replace('"alpha": 4.0', '"alpha": -4.0'),  # a negative parameter
        JSON_OBJECT.replace('"clv_months": 12', '"clv_months": 0'),
    ],
)
def test_ltv_params_must_be_a_valid_params_file(content: str, tmp_path: Path) -> None:
    """An incomplete or out-of-range params file fails at start, naming STREAM_LTV_PARAMS."""
    path = resolve(FILE, tmp_path, content)
    with pytest.raises(SettingsError, match=r"^STREAM_LTV_PARAMS="):
        Settings.from_env({"STREAM_LTV_PARAMS": path})


def test_default_ltv_params_are_the_packaged_cdnow_fit() -> None:
    """Unset STREAM_LTV_PARAMS: the packaged CDNOW fit in days (alpha = 4.414 weeks x 7)."""
    params = load_ltv_params(None)
    assert params.bgnbd.r == pytest.approx(0.243, abs=5e-4)
    assert params.bgnbd.alpha == pytest.approx(4.414 * 7, abs=7 * 5e-4)
    assert params.bgnbd.a == pytest.approx(0.793, abs=5e-4)
    assert params.bgnbd.b == pytest.approx(2.426, abs=5e-4)


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
@pytest.mark.parametrize(
    "given", [{}, {"STREAM_SASL_USERNAME": "u"}, {"STREAM_SASL_PASSWORD": "p"}]
)
def test_sasl_without_its_credentials_is_refused_at_once(
    protocol: str, given: dict[str, str]
) -> None:
    """SASL with no username or no password stops at the settings, naming both variables (the
    worker started and died of aiokafka's ValueError, with no setting named)."""
    with pytest.raises(SettingsError, match="STREAM_SASL_USERNAME and STREAM_SASL_PASSWORD"):
        Settings.from_env({"STREAM_SECURITY_PROTOCOL": protocol, **given})


def test_the_worker_connects_to_faust_s_default_broker_where_none_is_set() -> None:
    """Unset, the worker's clients (Faust's, the broker watch, the index reader, the topic
    limit lookup) all go to localhost:9092, from one place; set, to STREAM_BROKER's."""
    unset = Settings.from_env({})
    assert (unset.broker_url, unset.worker_servers) == (
        "kafka://localhost:9092",
        ["localhost:9092"],
    )
    with pytest.raises(SettingsError):
        unset.bootstrap_servers  # noqa: B018 (the property raises)
    both = Settings.from_env({"STREAM_BROKER": "k1:9092,kafka://k2:9093"})
    assert both.worker_servers == both.bootstrap_servers == ["k1:9092", "k2:9093"]
