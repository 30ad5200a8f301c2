"""The fintech world: customers, cards, merchants, card payments and a past offer campaign.

Each customer has latent traits (activity, price sensitivity, contact aversion) that shape
both the observable history (how often and when they pay) and their response to each
offer, so the effects are heterogeneous and learnable from behaviour. docs/worlds.md
gives the formulas; :func:`effect_model` is the single place they live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from liftwise.contracts.fintech import (
    AGE_BANDS,
    CARD_TYPES,
    CATEGORIES,
    CITIES,
    INCOME_BANDS,
    REGIONS,
    SEGMENTS,
)
from liftwise.contracts.manifest import Campaign, CampaignSummary, CurrentPolicyThresholds
from liftwise.simulate.common import (
    US_PER_DAY,
    US_PER_HOUR,
    CampaignTotals,
    arms_columns,
    assign_arms,
    chunk_rng,
    classify_units,
    conditional_draw,
    day_cdf,
    expected_net_profit,
    ground_truth_columns,
    observed,
    resolve_arms,
    sample_days,
    sample_hours,
    sigmoid,
    to_timestamps,
    zipf_probabilities,
)
from liftwise.simulate.config import ArmConfig, WorldConfig
from liftwise.simulate.sink import TableSink

DEFAULT_ARMS: tuple[ArmConfig, ...] = (
    ArmConfig(
        name="control", ratio=0.4, contact_cost=0, redemption_cost=0, description="No offer."
    ),
    ArmConfig(
        name="cashback_5",
        ratio=0.2,
        contact_cost=1_000,
        redemption_cost=30_000,
        description="5% cashback on card spend, capped at 30,000 VND.",
    ),
    ArmConfig(
        name="cashback_10",
        ratio=0.2,
        contact_cost=1_000,
        redemption_cost=60_000,
        description="10% cashback on card spend, capped at 60,000 VND.",
    ),
    ArmConfig(
        name="fee_waiver",
        ratio=0.2,
        contact_cost=1_000,
        redemption_cost=50_000,
        description="Waive the next card fee (revolving credit-card users value it most).",
    ),
)

# Observable population mix.
SEGMENT_P = np.array([0.55, 0.18, 0.07, 0.12, 0.08])  # mass, affluent, premium, student, sme
REGION_P = np.array([0.22, 0.28, 0.06, 0.16, 0.12, 0.16])
AGE_P_BY_SEGMENT = np.array(
    [
        [0.12, 0.32, 0.26, 0.18, 0.12],  # mass
        [0.03, 0.25, 0.33, 0.24, 0.15],  # affluent
        [0.01, 0.15, 0.32, 0.29, 0.23],  # premium
        [0.85, 0.15, 0.00, 0.00, 0.00],  # student
        [0.02, 0.28, 0.36, 0.23, 0.11],  # sme
    ]
)
INCOME_P_BY_SEGMENT = np.array(
    [
        [0.35, 0.40, 0.20, 0.05],
        [0.02, 0.18, 0.50, 0.30],
        [0.00, 0.05, 0.25, 0.70],
        [0.75, 0.22, 0.03, 0.00],
        [0.10, 0.30, 0.40, 0.20],
    ]
)
ACTIVITY_MEAN_BY_SEGMENT = np.array([0.62, 0.85, 1.05, 0.50, 0.95])  # payments per day
# Probability of each card type for extra cards, by income band (debit first card otherwise).
CARD_P_BY_INCOME = np.array(
    [
        [0.70, 0.28, 0.02, 0.00],
        [0.45, 0.40, 0.13, 0.02],
        [0.25, 0.35, 0.30, 0.10],
        [0.10, 0.25, 0.35, 0.30],
    ]
)
EXTRA_CARD_P_BY_INCOME = np.array([0.15, 0.30, 0.45, 0.60])

CATEGORY_P = np.array([0.20, 0.18, 0.08, 0.04, 0.04, 0.10, 0.08, 0.08, 0.06, 0.14])
# Log-normal payment amounts per merchant category: (median VND, sigma of log amount).
AMOUNT_MEDIAN_VND = np.array([150e3, 120e3, 300e3, 2.5e6, 3.0e6, 600e3, 500e3, 200e3, 400e3, 350e3])
AMOUNT_SIGMA = np.array([0.6, 0.5, 0.3, 0.8, 0.9, 0.7, 0.4, 0.6, 0.7, 0.8])
CITY_P = np.array([0.22, 0.26, 0.07, 0.06, 0.05, 0.04, 0.30])

# v2 seasonality: weekday (Mon..Sun) and hour-of-day weights; v1 is flat.
WEEKDAY_WEIGHTS = np.array([0.95, 0.90, 0.95, 1.00, 1.15, 1.30, 1.10])
HOUR_WEIGHTS = np.array(
    [0.15, 0.08, 0.05, 0.04, 0.05, 0.12, 0.35, 0.80, 1.10, 1.00, 1.05, 1.50,
     1.65, 1.30, 0.95, 0.90, 1.00, 1.20, 1.60, 1.80, 1.70, 1.30, 0.80, 0.40]
)  # fmt: skip

# Campaign response: spend of a converter, and the bank's margin on it.
CONVERTER_SPEND_MEDIAN_BY_INCOME = np.array([2.5e6, 4.0e6, 7.0e6, 12.0e6])
CONVERTER_SPEND_SIGMA = 0.6
MARGIN_RATE = 0.04
SPEND_BOOST = {"control": 0.0, "cashback_5": 0.05, "cashback_10": 0.12, "fee_waiver": 0.03}

# Today's rule ranks customers by monthly card spend over the last (up to) 90 days: the top
# 10% get the biggest offer, the next 15% the smaller one.
CURRENT_POLICY_WINDOW_DAYS = 90
CURRENT_POLICY_TOP_SHARE = 0.10
CURRENT_POLICY_MID_SHARE = 0.15

_STREAM_MERCHANTS, _STREAM_CUSTOMERS, _STREAM_PAYMENTS, _STREAM_CAMPAIGN = 1, 2, 3, 4


@dataclass(frozen=True)
class Customers:
    """One chunk of customers: observable attributes and latent traits (index-aligned)."""

    ids: np.ndarray
    segment: np.ndarray
    age_band: np.ndarray
    region: np.ndarray
    income_band: np.ndarray
    tenure_months: np.ndarray
    activity: np.ndarray  # latent payments per day while active
    first_day: np.ndarray  # first history day the customer can pay (new accounts start late)
    last_day: np.ndarray  # exclusive; < days for customers who went dormant
    price_sensitivity: np.ndarray
    contact_aversion: np.ndarray
    revolver: np.ndarray  # carries a credit-card balance (values a fee waiver)


def generate(
    config: WorldConfig, sink: TableSink, progress: Callable[[int], None]
) -> tuple[Campaign, CampaignSummary]:
    """Write every fintech table chunk by chunk; return the campaign and its summary."""
    arms = resolve_arms(config, DEFAULT_ARMS)
    arm_names = [a.name for a in arms]
    merchant_cdf, merchant_category = _write_merchants(config, sink)
    sink.write("arms", arms_columns(arms))
    cdf = day_cdf(config.history_start, config.days, _weekday_weights(config))
    totals = CampaignTotals(arms)
    next_card, next_payment = 0, 0
    spend: list[np.ndarray] = []  # monthly spend per customer: 8 bytes a unit, for the policy
    for chunk, start in enumerate(range(0, config.units, config.chunk_units)):
        size = min(config.chunk_units, config.units - start)
        rng = chunk_rng(config.seed, _STREAM_CUSTOMERS, chunk)
        customers = _draw_customers(rng, config, start, size)
        sink.write("customers", _customer_columns(customers))
        cards = _draw_cards(rng, config, customers, next_card)
        next_card += len(cards["card_id"])
        sink.write("cards", _public(cards))
        prng = chunk_rng(config.seed, _STREAM_PAYMENTS, chunk)
        payments = _draw_payments(
            prng, config, customers, cards, cdf, (merchant_cdf, merchant_category), next_payment
        )
        next_payment += len(payments["payment_id"])
        sink.write("payments", _public(payments))
        spend.append(_trailing_spend(config, customers, payments))
        crng = chunk_rng(config.seed, _STREAM_CAMPAIGN, chunk)
        _write_campaign(crng, config, sink, arms, customers, cards, totals)
        progress(size)
    campaign = Campaign(
        unit="customer",
        unit_table="customers",
        unit_key="customer_id",
        outcome="converted",
        value="margin_vnd",
        currency="VND",
        decision_time=config.decision_time,
        window_days=config.outcome_window_days,
        control=arm_names[0],
        arms=arms,
        current_policy=_write_current_policy(
            config, sink, np.concatenate(spend), arm_names, totals
        ),
    )
    summary = totals.summary(
        config.units,
        payments=next_payment,
        payments_per_unit=round(next_payment / config.units, 6),
    )
    return campaign, summary


def _weekday_weights(config: WorldConfig) -> np.ndarray | None:
    return WEEKDAY_WEIGHTS if config.realism == "v2" else None


def _hour_weights(config: WorldConfig) -> np.ndarray | None:
    return HOUR_WEIGHTS if config.realism == "v2" else None


def merchant_count(units: int) -> int:
    """Merchants grow with the customer base (one per 50 customers, 200 to 50,000)."""
    return int(np.clip(units // 50, 200, 50_000))


def _write_merchants(config: WorldConfig, sink: TableSink) -> tuple[np.ndarray, np.ndarray]:
    """Merchants with random ranks; returns the CDF over merchant ids for Zipf sampling."""
    rng = chunk_rng(config.seed, _STREAM_MERCHANTS, 0)
    n = merchant_count(config.units)
    category = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_P)
    city = rng.choice(len(CITIES), size=n, p=CITY_P)
    rank = rng.permutation(n) + 1
    sink.write(
        "merchants",
        {
            "merchant_id": np.arange(n, dtype=np.int64),
            "category": np.asarray(CATEGORIES, dtype=object)[category],
            "city": np.asarray(CITIES, dtype=object)[city],
            "popularity_rank": rank.astype(np.int64),
        },
    )
    probability = zipf_probabilities(n, config.zipf_exponent)[rank - 1]
    cdf = np.cumsum(probability)
    cdf[-1] = 1.0
    return cdf, category


def _draw_customers(rng: np.random.Generator, config: WorldConfig, start: int, n: int) -> Customers:
    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_P)
    age = conditional_draw(rng, segment, AGE_P_BY_SEGMENT)
    income = conditional_draw(rng, segment, INCOME_P_BY_SEGMENT)
    region = rng.choice(len(REGIONS), size=n, p=REGION_P)
    is_student = segment == SEGMENTS.index("student")
    tenure = np.where(is_student, rng.gamma(1.5, 8.0, n), rng.gamma(2.0, 28.0, n))
    tenure = np.minimum(np.round(tenure), 600).astype(np.int64)
    mean_activity = ACTIVITY_MEAN_BY_SEGMENT[segment]
    activity = rng.gamma(1.6, mean_activity / 1.6)
    days_open = np.floor(tenure * 30.44).astype(np.int64)
    first_day = np.clip(config.days - days_open, 0, config.days - 1)
    dormant = rng.random(n) < 0.22
    last_day = np.where(dormant, rng.integers(first_day, config.days, endpoint=True), config.days)
    last_day = np.maximum(last_day, first_day + 1)
    young = age == AGE_BANDS.index("18-24")
    sensitivity = sigmoid(
        -0.6
        + 1.5 * (income == 0)
        + 0.7 * (income == 1)
        - 0.8 * (income == 3)
        + 0.9 * is_student
        + 0.5 * young
        + rng.normal(0, 0.5, n)
    )
    aversion = sigmoid(
        -2.3
        + 2.2 * (segment == SEGMENTS.index("premium"))
        + 1.0 * (segment == SEGMENTS.index("affluent"))
        + 1.0 * (age == AGE_BANDS.index("55+"))
        + 0.5 * (age == AGE_BANDS.index("45-54"))
        + rng.normal(0, 0.6, n)
    )
    return Customers(
        ids=np.arange(start, start + n, dtype=np.int64),
        segment=segment,
        age_band=age,
        region=region,
        income_band=income,
        tenure_months=tenure,
        activity=activity,
        first_day=first_day,
        last_day=last_day,
        price_sensitivity=sensitivity,
        contact_aversion=aversion,
        revolver=rng.random(n) < 0.5,
    )


def _customer_columns(c: Customers) -> dict[str, np.ndarray]:
    return {
        "customer_id": c.ids,
        "segment": np.asarray(SEGMENTS, dtype=object)[c.segment],
        "age_band": np.asarray(AGE_BANDS, dtype=object)[c.age_band],
        "region": np.asarray(REGIONS, dtype=object)[c.region],
        "tenure_months": c.tenure_months,
        "income_band": np.asarray(INCOME_BANDS, dtype=object)[c.income_band],
    }


def _draw_cards(
    rng: np.random.Generator, config: WorldConfig, c: Customers, first_id: int
) -> dict[str, np.ndarray]:
    """1-3 cards per customer: a first card plus up to two extras, richer income -> credit."""
    extra_p = EXTRA_CARD_P_BY_INCOME[c.income_band]
    n_cards = 1 + rng.binomial(2, extra_p)
    owner = np.repeat(np.arange(len(c.ids)), n_cards)
    position = np.arange(len(owner)) - np.repeat(np.cumsum(n_cards) - n_cards, n_cards)
    card_type = conditional_draw(rng, c.income_band[owner], CARD_P_BY_INCOME)
    first_is_debit = rng.random(len(owner)) < 0.8
    card_type = np.where((position == 0) & first_is_debit, 0, card_type)
    opened_days = np.floor(c.tenure_months[owner] * 30.44)
    issued_before_us = (rng.random(len(owner)) * opened_days * US_PER_DAY).astype(np.int64)
    issued_at = to_timestamps(
        config.history_start, (c.first_day[owner] * US_PER_DAY) - issued_before_us
    )
    return {
        "card_id": np.arange(first_id, first_id + len(owner), dtype=np.int64),
        "customer_id": c.ids[owner],
        "card_type": np.asarray(CARD_TYPES, dtype=object)[card_type],
        "issued_at": issued_at,
        "_owner": owner,  # chunk-local index, dropped before writing
        "_n_cards": n_cards,
        "_type": card_type,
    }


def _draw_payments(
    rng: np.random.Generator,
    config: WorldConfig,
    c: Customers,
    cards: dict[str, np.ndarray],
    cdf: np.ndarray,
    merchants: tuple[np.ndarray, np.ndarray],
    first_id: int,
) -> dict[str, np.ndarray]:
    """Payments while each customer is active: Poisson counts, seasonal days and hours,
    Zipf merchants, log-normal amounts per merchant category; sorted by customer and time."""
    active_days = c.last_day - c.first_day
    counts = rng.poisson(c.activity * active_days)
    owner = np.repeat(np.arange(len(c.ids)), counts)
    day = sample_days(rng, cdf, c.first_day[owner], c.last_day[owner])
    hour = sample_hours(rng, len(owner), _hour_weights(config))
    offset = day * US_PER_DAY + hour * US_PER_HOUR + rng.integers(0, US_PER_HOUR, len(owner))
    merchant_cdf, merchant_category = merchants
    n_cards = cards["_n_cards"]
    card_start = np.cumsum(n_cards) - n_cards
    primary = rng.random(len(owner)) < 0.6
    card_pick = np.where(primary, 0, np.floor(rng.random(len(owner)) * n_cards[owner]))
    card_id = cards["card_id"][card_start[owner] + card_pick.astype(np.int64)]
    merchant = np.searchsorted(merchant_cdf, rng.random(len(owner)), side="right")
    merchant = np.minimum(merchant, len(merchant_cdf) - 1)
    category = merchant_category[merchant]
    amount = rng.lognormal(np.log(AMOUNT_MEDIAN_VND[category]), AMOUNT_SIGMA[category])
    amount = np.maximum(np.round(amount / 1000.0) * 1000.0, 1000.0).astype(np.int64)
    order = np.lexsort((offset, owner))
    return {
        "payment_id": np.arange(first_id, first_id + len(owner), dtype=np.int64),
        "customer_id": c.ids[owner][order],
        "card_id": card_id[order],
        "merchant_id": merchant[order].astype(np.int64),
        "ts": to_timestamps(config.history_start, offset[order]),
        "amount_vnd": amount[order],
        "_owner": owner[order],
    }


def _public(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop the chunk-local helper columns (prefixed ``_``) before writing."""
    return {k: v for k, v in columns.items() if not k.startswith("_")}


def _trailing_spend(
    config: WorldConfig, c: Customers, payments: dict[str, np.ndarray]
) -> np.ndarray:
    """Each customer's monthly card spend over the last 90 days (or the whole history)."""
    owner = payments["_owner"]
    window = min(CURRENT_POLICY_WINDOW_DAYS, config.days)
    window_start = np.datetime64(config.decision_time, "us") - np.timedelta64(window, "D")
    recent = payments["ts"] >= window_start
    total = np.bincount(owner[recent], weights=payments["amount_vnd"][recent], minlength=len(c.ids))
    return total * 30.0 / window


def current_policy(
    monthly_spend_vnd: np.ndarray, arm_names: list[str], top_vnd: float, mid_vnd: float
) -> np.ndarray:
    """Today's rule without uplift: the biggest offer to the top spenders.

    Monthly spend >= ``top_vnd`` gets cashback_10, >= ``mid_vnd`` cashback_5, the rest none
    (arms missing from the campaign fall back to control).
    """

    def pick(name: str) -> str:
        return name if name in arm_names else arm_names[0]

    return np.where(
        monthly_spend_vnd >= top_vnd,
        pick("cashback_10"),
        np.where(monthly_spend_vnd >= mid_vnd, pick("cashback_5"), arm_names[0]),
    ).astype(object)


def _write_current_policy(
    config: WorldConfig,
    sink: TableSink,
    monthly_spend: np.ndarray,
    arm_names: list[str],
    totals: CampaignTotals,
) -> CurrentPolicyThresholds:
    """Set the thresholds at the spend quantiles of the whole base, then write the policy."""
    top = float(np.quantile(monthly_spend, 1 - CURRENT_POLICY_TOP_SHARE))
    mid = float(np.quantile(monthly_spend, 1 - CURRENT_POLICY_TOP_SHARE - CURRENT_POLICY_MID_SHARE))
    for start in range(0, config.units, config.chunk_units):
        part = monthly_spend[start : start + config.chunk_units]
        policy = current_policy(part, arm_names, top, mid)
        ids = np.arange(start, start + len(part), dtype=np.int64)
        sink.write("current_policy", {"unit_id": ids, "arm": policy})
        totals.add_policy(policy)
    return CurrentPolicyThresholds(
        top_monthly_spend_vnd=round(top, 2), mid_monthly_spend_vnd=round(mid, 2)
    )


def effect_model(
    c: Customers, has_credit: np.ndarray, days: int, arm_names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline conversion and the (n, arms) matrix of conversion probabilities.

    Engaged customers convert anyway (sure things); dormant ones barely react (lost causes);
    price-sensitive ones respond to cashback, most to the larger one; revolving credit-card
    users to the fee waiver; contact-averse (premium, older) ones react badly (sleeping dogs).
    """
    dormant = c.last_day < days
    engagement = (np.log(c.activity) + 0.65) / 0.85
    tenure_z = (np.log1p(c.tenure_months) - 3.5) / 1.0
    baseline = sigmoid(-1.1 + 1.5 * engagement + 0.15 * tenure_z - 2.2 * dormant)
    reach = sigmoid(2.5 * (engagement + 0.8)) * (1.0 - 0.85 * dormant)
    room = (1.0 - baseline) ** 2 * reach  # little room left for sure things
    s, a = c.price_sensitivity, c.contact_aversion
    effects = {
        "control": np.zeros_like(baseline),
        "cashback_5": room * (0.05 + 0.25 * s) - 0.12 * a,
        "cashback_10": room * (0.03 + 0.75 * s**2) - 0.14 * a,
        "fee_waiver": room * (0.03 + 0.45 * (has_credit & c.revolver)) - 0.06 * a,
    }
    probability = np.column_stack(
        [np.clip(baseline + effects[name], 0.002, 0.995) for name in arm_names]
    )
    return baseline, probability


def _write_campaign(
    rng: np.random.Generator,
    config: WorldConfig,
    sink: TableSink,
    arms: tuple[ArmConfig, ...],
    c: Customers,
    cards: dict[str, np.ndarray],
    totals: CampaignTotals,
) -> None:
    """Randomise the chunk into arms; draw potential outcomes under every arm."""
    n = len(c.ids)
    names = [a.name for a in arms]
    owner, card_type = cards["_owner"], cards["_type"]
    has_credit = np.bincount(owner, weights=card_type > 0, minlength=n) > 0
    baseline, probability = effect_model(c, has_credit, config.days, names)
    effects = probability[:, 1:] - probability[:, :1]
    unit_type = classify_units(baseline, effects)
    uniform = rng.random(n)  # common random numbers: one draw per customer for all arms
    base_spend = rng.lognormal(
        np.log(CONVERTER_SPEND_MEDIAN_BY_INCOME[c.income_band]), CONVERTER_SPEND_SIGMA
    )
    boost = np.array([SPEND_BOOST[name] for name in names])
    spend_if_converted = base_spend[:, None] * (1.0 + boost)
    converted = uniform[:, None] < probability
    spend = np.round(converted * spend_if_converted, 0)
    margin = np.round(MARGIN_RATE * spend, 2)
    mean_spend = np.exp(
        np.log(CONVERTER_SPEND_MEDIAN_BY_INCOME[c.income_band]) + CONVERTER_SPEND_SIGMA**2 / 2
    )
    expected_margin = MARGIN_RATE * probability * mean_spend[:, None] * (1.0 + boost)
    arm = assign_arms(rng, n, arms)
    assigned_names = np.asarray(names, dtype=object)[arm]
    sink.write(
        "assignments",
        {
            "unit_id": c.ids,
            "arm": assigned_names,
            "assigned_at": np.full(n, np.datetime64(config.decision_time, "us")),
        },
    )
    sink.write(
        "outcomes",
        {
            "unit_id": c.ids,
            "arm": assigned_names,
            "converted": observed(converted, arm).astype(np.int64),
            "spend_vnd": observed(spend, arm),
            "margin_vnd": observed(margin, arm),
        },
    )
    sink.write(
        "ground_truth",
        ground_truth_columns(
            c.ids, names, probability, expected_margin, converted, margin, unit_type
        ),
    )
    net = expected_net_profit(expected_margin, probability, arms)
    totals.add(unit_type, arm, probability, net)
