"""The learning world: learners, courses, daily learning sessions and a past retention campaign.

Each learner carries a latent engagement that drifts day by day (for many it declines); it
drives how often they study and a daily churn hazard that rises as engagement falls, so
the observable history (sessions) carries the signal that predicts retention and the
response to each intervention. :func:`effect_model` is the single place the effects live.

Campaign population: *every* learner signed up before the decision date is randomised,
including those who have silently churned. The business cannot see churn, only
inactivity, so it would contact them too; they are the natural lost causes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from liftwise.contracts.learning import (
    AGE_BANDS,
    COUNTRIES,
    COURSE_CATEGORIES,
    DIFFICULTIES,
    GOALS,
    PLANS,
)
from liftwise.contracts.manifest import Campaign, CampaignSummary
from liftwise.simulate.common import (
    US_PER_DAY,
    US_PER_HOUR,
    CampaignTotals,
    arms_columns,
    assign_arms,
    chunk_rng,
    classify_units,
    conditional_draw,
    expected_net_profit,
    ground_truth_columns,
    observed,
    resolve_arms,
    sample_hours,
    sigmoid,
    to_timestamps,
    zipf_probabilities,
)
from liftwise.simulate.config import ArmConfig, WorldConfig
from liftwise.simulate.sink import TableSink

DEFAULT_ARMS: tuple[ArmConfig, ...] = (
    ArmConfig(
        name="control", ratio=0.4, contact_cost=0, redemption_cost=0, description="No contact."
    ),
    ArmConfig(
        name="nudge_email",
        ratio=0.2,
        contact_cost=0.05,
        redemption_cost=0.0,
        description="Personalised e-mail nudging the learner back to their course.",
    ),
    ArmConfig(
        name="tutor_call",
        ratio=0.2,
        contact_cost=4.00,
        redemption_cost=0.0,
        description="A 15-minute call from a tutor to plan the next study weeks.",
    ),
    ArmConfig(
        name="peer_cohort_invite",
        ratio=0.2,
        contact_cost=0.50,
        redemption_cost=1.00,
        description="Invitation to a peer study cohort (moderation cost per retained member).",
    ),
)
KNOWN_ARMS = tuple(a.name for a in DEFAULT_ARMS)

# Observable population mix.
COUNTRY_P = np.array([0.24, 0.16, 0.08, 0.08, 0.06, 0.06, 0.05, 0.06, 0.05, 0.16])
AGE_P = np.array([0.06, 0.24, 0.30, 0.20, 0.12, 0.08])
GOAL_P_BY_AGE = np.array(  # career, exam, school, hobby
    [
        [0.02, 0.30, 0.60, 0.08],  # 13-17
        [0.30, 0.30, 0.25, 0.15],  # 18-24
        [0.55, 0.20, 0.05, 0.20],  # 25-34
        [0.50, 0.12, 0.03, 0.35],  # 35-44
        [0.35, 0.08, 0.02, 0.55],  # 45-54
        [0.15, 0.05, 0.02, 0.78],  # 55+
    ]
)
PLAN_P_BY_GOAL = np.array(  # free, plus, pro
    [
        [0.45, 0.33, 0.22],  # career
        [0.45, 0.38, 0.17],  # exam
        [0.72, 0.23, 0.05],  # school
        [0.62, 0.28, 0.10],  # hobby
    ]
)
NEW_LEARNER_SHARE = 0.25  # signed up inside the history window
TENURE_GAMMA = (1.2, 300.0)  # extra days of tenure before the window for the others

# Course catalogue.
N_COURSES = 300
CATEGORY_P = np.array([0.22, 0.14, 0.18, 0.12, 0.08, 0.12, 0.08, 0.06])
DIFFICULTY_P = np.array([0.45, 0.38, 0.17])
LESSON_MINUTES = np.array([8.0, 11.0, 15.0])  # typical minutes per lesson by difficulty
EXTRA_COURSE_P = 0.35  # each learner studies 1 + Binomial(2, p) courses

# Engagement dynamics: log session rate e; sessions/day = BASE_RATE * exp(e) * weekday weight.
BASE_RATE = 0.45
E_BOUNDS = (-4.0, 2.5)
E_DAILY_SD = 0.06
TRAJECTORY_P = np.array([0.45, 0.40, 0.15])  # declining, stable, rising
# Daily churn hazard h(e) = H_MIN + H_SPAN * sigmoid(-H_SLOPE * (e - H_MID)): rises as e falls.
H_MIN, H_SPAN, H_SLOPE, H_MID = 0.0015, 0.06, 2.0, -1.5
# A churned learner comes back within the window with probability REACT_BASE + REACT_SPAN *
# exp(-days since churn / REACT_DECAY).
REACT_BASE, REACT_SPAN, REACT_DECAY = 0.02, 0.10, 20.0

# v2 seasonality: weekday (Mon..Sun) and hour-of-day weights; v1 is flat.
WEEKDAY_WEIGHTS = np.array([1.15, 1.05, 1.00, 0.95, 0.78, 0.75, 1.30])
HOUR_WEIGHTS = np.array(
    [0.20, 0.10, 0.05, 0.04, 0.05, 0.10, 0.35, 0.80, 0.75, 0.60, 0.55, 0.60,
     0.85, 0.75, 0.55, 0.55, 0.65, 0.90, 1.30, 1.90, 2.20, 2.00, 1.40, 0.70]
)  # fmt: skip

# Revenue in the window of a retained learner: the plan's monthly price times a personal
# discount, plus random extras (ads and upsells on free, add-on purchases on paid plans).
PLAN_PRICE_USD = np.array([0.0, 12.0, 30.0])
DISCOUNTS = np.array([1.0, 0.8, 0.5])  # list price, promo, annual/education rate
DISCOUNT_P = np.array([0.6, 0.25, 0.15])
ADS_GAMMA = (2.0, 0.3)  # ad revenue of an active learner (shape, scale)
FREE_UPSELL = (0.06, 12.0)  # P(upgrade in the window), first month paid
ADDON = (0.05, 9.99)  # P(add-on purchase) on paid plans, price

# Effect model (see effect_model): tau_a = LIFT_a * reach * room * fit_a - INTRUSIVENESS_a * c.
LIFT = {"nudge_email": 0.05, "tutor_call": 1.0, "peer_cohort_invite": 0.5}
INTRUSIVENESS = {"nudge_email": 0.45, "tutor_call": 1.0, "peer_cohort_invite": 0.7}
GOAL_FIT = np.array([1.2, 1.2, 0.8, 0.5])  # tutor call by goal: career, exam, school, hobby
AUTONOMY_PENALTY = 0.08
CHURNED_REACH = 0.3  # churned learners rarely open an e-mail or answer a call

# Current policy thresholds (observable behaviour only).
ACTIVITY_WINDOW_DAYS = 14
INACTIVE_DAYS_FOR_EMAIL = 7
DROP_SHARE_FOR_CALL = 0.6  # recent sessions at most 40% of the early ones
MIN_EARLY_SESSIONS_FOR_CALL = 4

_STREAM_COURSES, _STREAM_LEARNERS, _STREAM_HISTORY, _STREAM_SESSIONS = 11, 12, 13, 14
_STREAM_OUTCOMES, _STREAM_ASSIGN = 15, 16


@dataclass(frozen=True)
class Catalogue:
    """What sessions need to know about courses: the Zipf CDF and minutes per lesson."""

    cdf: np.ndarray
    lesson_minutes: np.ndarray


@dataclass(frozen=True)
class Learners:
    """One chunk of learners: observable attributes and latent traits (index-aligned)."""

    ids: np.ndarray
    country: np.ndarray
    plan: np.ndarray
    age_band: np.ndarray
    goal: np.ndarray
    signup_us: np.ndarray  # signup as microseconds after the history start (may be < 0)
    first_day: np.ndarray  # first history day with possible sessions
    engagement0: np.ndarray  # latent log session rate on first_day
    drift: np.ndarray  # daily drift of the engagement
    autonomy: np.ndarray  # self-directed learners: tutor calls backfire
    sociability: np.ndarray  # who gains from a peer cohort
    aversion: np.ndarray  # > 0 for contact-averse learners: any contact hurts
    discount: np.ndarray  # share of the plan's list price the learner pays
    study_minutes: np.ndarray  # median session length
    courses: np.ndarray  # (n, 3) enrolled course ids
    n_courses: np.ndarray


@dataclass(frozen=True)
class History:
    """The chunk's simulated past: engagement and churn state at the decision date, the
    activity summaries the business sees, and one (learner, day) row per session."""

    engagement: np.ndarray
    alive: np.ndarray
    churn_day: np.ndarray  # -1 while alive
    early_sessions: np.ndarray  # in each learner's first ACTIVITY_WINDOW_DAYS
    recent_sessions: np.ndarray  # in the last ACTIVITY_WINDOW_DAYS before the decision
    days_inactive: np.ndarray  # whole days since the last session (or since first_day)
    session_learner: np.ndarray
    session_day: np.ndarray


@dataclass(frozen=True)
class Potential:
    """Potential outcomes of a chunk under every campaign arm, (n, arms) each."""

    baseline: np.ndarray
    probability: np.ndarray
    expected_revenue: np.ndarray
    retained: np.ndarray
    revenue: np.ndarray


def generate(
    config: WorldConfig, sink: TableSink, progress: Callable[[int], None]
) -> tuple[Campaign, CampaignSummary]:
    """Write every learning table chunk by chunk; return the campaign and its summary."""
    arms = resolve_arms(config, DEFAULT_ARMS)
    names = [a.name for a in arms]
    catalogue = _write_courses(config, sink)
    sink.write("arms", arms_columns(arms))
    totals = CampaignTotals(arms)
    next_session, churned = 0, 0
    for chunk, start in enumerate(range(0, config.units, config.chunk_units)):
        size = min(config.chunk_units, config.units - start)
        rng = chunk_rng(config.seed, _STREAM_LEARNERS, chunk)
        learners = draw_learners(rng, config, start, size, catalogue)
        sink.write("learners", _learner_columns(config, learners))
        history = simulate_history(chunk_rng(config.seed, _STREAM_HISTORY, chunk), config, learners)
        rng = chunk_rng(config.seed, _STREAM_SESSIONS, chunk)
        sessions = _session_columns(rng, config, learners, history, catalogue)
        sessions["session_id"] += next_session
        next_session += len(sessions["session_id"])
        sink.write("sessions", sessions)
        rng = chunk_rng(config.seed, _STREAM_OUTCOMES, chunk)
        potential = potential_outcomes(rng, config, learners, history, names)
        arm = assign_arms(chunk_rng(config.seed, _STREAM_ASSIGN, chunk), size, arms)
        unit_type, policy = _write_campaign(config, sink, names, learners, history, potential, arm)
        net = expected_net_profit(potential.expected_revenue, potential.probability, arms)
        totals.add(unit_type, arm, potential.probability, net, policy)
        churned += int((~history.alive).sum())
        progress(size)
    campaign = Campaign(
        unit="learner",
        unit_table="learners",
        unit_key="learner_id",
        outcome="retained_30d",
        value="revenue_usd",
        currency="USD",
        decision_time=config.decision_time,
        window_days=config.outcome_window_days,
        control=names[0],
        arms=arms,
    )
    summary = totals.summary(
        config.units,
        sessions=next_session,
        sessions_per_learner=round(next_session / config.units, 6),
        churned_before_decision_share=round(churned / config.units, 6),
    )
    return campaign, summary


def _write_courses(config: WorldConfig, sink: TableSink) -> Catalogue:
    """A few hundred courses with random popularity ranks; Zipf enrolment over the ranks."""
    rng = chunk_rng(config.seed, _STREAM_COURSES, 0)
    category = rng.choice(len(COURSE_CATEGORIES), size=N_COURSES, p=CATEGORY_P)
    difficulty = rng.choice(len(DIFFICULTIES), size=N_COURSES, p=DIFFICULTY_P)
    length = np.clip(np.round(rng.lognormal(np.log(24.0), 0.5, N_COURSES)), 4, 200)
    rank = rng.permutation(N_COURSES) + 1
    sink.write(
        "courses",
        {
            "course_id": np.arange(N_COURSES, dtype=np.int64),
            "category": np.asarray(COURSE_CATEGORIES, dtype=object)[category],
            "difficulty": np.asarray(DIFFICULTIES, dtype=object)[difficulty],
            "length_lessons": length.astype(np.int64),
            "popularity_rank": rank.astype(np.int64),
        },
    )
    cdf = np.cumsum(zipf_probabilities(N_COURSES, config.zipf_exponent)[rank - 1])
    cdf[-1] = 1.0
    return Catalogue(cdf=cdf, lesson_minutes=LESSON_MINUTES[difficulty])


def draw_learners(
    rng: np.random.Generator, config: WorldConfig, start: int, n: int, catalogue: Catalogue
) -> Learners:
    """Learners ``start .. start + n - 1``: profile, signup, latent traits and courses."""
    age = rng.choice(len(AGE_BANDS), size=n, p=AGE_P)
    goal = conditional_draw(rng, age, GOAL_P_BY_AGE)
    plan = conditional_draw(rng, goal, PLAN_P_BY_GOAL)
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_P)

    new = rng.random(n) < NEW_LEARNER_SHARE
    signup_day = rng.integers(0, config.days, size=n)
    time_of_day = rng.integers(0, US_PER_DAY, size=n)
    old_tenure_us = (rng.gamma(*TENURE_GAMMA, size=n) * US_PER_DAY).astype(np.int64)
    signup_us = np.where(new, signup_day * US_PER_DAY + time_of_day, -old_tenure_us - time_of_day)
    first_day = np.where(new, signup_day + 1, 0)  # new learners study from the next day

    is_goal = {g: goal == GOALS.index(g) for g in GOALS}
    autonomy = sigmoid(
        rng.normal(0.0, 1.2, n)
        + 1.2 * is_goal["hobby"]
        + 0.5 * (age >= AGE_BANDS.index("35-44"))
        - 0.3 * is_goal["career"]
        - 1.0 * is_goal["exam"]
        - 0.8 * is_goal["school"]
    )
    sociability = sigmoid(
        rng.normal(0.0, 1.0, n)
        + 0.9 * (age <= AGE_BANDS.index("18-24"))
        + 0.6 * (is_goal["exam"] | is_goal["school"])
        - 0.7 * is_goal["hobby"]
        - 0.4 * (age >= AGE_BANDS.index("45-54"))
    )
    averse = rng.random(n) < 0.05 + 0.25 * autonomy
    aversion = averse * rng.uniform(0.03, 0.09, n)

    engagement0 = (
        rng.normal(0.0, 0.6, n)
        + np.array([0.0, 0.25, 0.45])[plan]
        + 0.2 * is_goal["exam"]
        + 0.4 * new  # the honeymoon of a fresh signup
    )
    trajectory = rng.choice(len(TRAJECTORY_P), size=n, p=TRAJECTORY_P)
    drift = np.select(
        [trajectory == 0, trajectory == 1],
        [-rng.uniform(0.004, 0.03, n), rng.normal(0.0, 0.002, n)],
        rng.uniform(0.001, 0.008, n),
    )
    courses = np.searchsorted(catalogue.cdf, rng.random((n, 3)), side="right")
    return Learners(
        ids=np.arange(start, start + n, dtype=np.int64),
        country=country,
        plan=plan,
        age_band=age,
        goal=goal,
        signup_us=signup_us,
        first_day=first_day,
        engagement0=engagement0,
        drift=drift,
        autonomy=autonomy,
        sociability=sociability,
        aversion=aversion,
        discount=DISCOUNTS[rng.choice(len(DISCOUNTS), size=n, p=DISCOUNT_P)],
        study_minutes=rng.lognormal(np.log(15.0), 0.35, n),
        courses=np.minimum(courses, N_COURSES - 1),
        n_courses=1 + rng.binomial(2, EXTRA_COURSE_P, n),
    )


def _learner_columns(config: WorldConfig, learners: Learners) -> dict[str, np.ndarray]:
    decision_us = config.days * US_PER_DAY
    return {
        "learner_id": learners.ids,
        "country": np.asarray(COUNTRIES, dtype=object)[learners.country],
        "plan": np.asarray(PLANS, dtype=object)[learners.plan],
        "age_band": np.asarray(AGE_BANDS, dtype=object)[learners.age_band],
        "goal": np.asarray(GOALS, dtype=object)[learners.goal],
        "signup_at": to_timestamps(config.history_start, learners.signup_us),
        "tenure_days": (decision_us - learners.signup_us) // US_PER_DAY,
    }


def churn_hazard(engagement: np.ndarray) -> np.ndarray:
    """Daily probability that an active learner quits; rises as engagement declines."""
    return H_MIN + H_SPAN * sigmoid(-H_SLOPE * (engagement - H_MID))


def activity_window(days: int) -> int:
    """Days in the early and recent activity windows (shorter for very short histories)."""
    return max(1, min(ACTIVITY_WINDOW_DAYS, days // 2))


def simulate_history(rng: np.random.Generator, config: WorldConfig, learners: Learners) -> History:
    """Day by day (vectorised over learners): drift engagement, draw sessions, then churn.

    A learner who churns on day d may still have studied that day, never afterwards.
    """
    n, days = len(learners.ids), config.days
    weekday = (config.history_start.weekday() + np.arange(days)) % 7
    day_weight = WEEKDAY_WEIGHTS[weekday] if config.realism == "v2" else np.ones(days)
    window = activity_window(days)
    early_end = learners.first_day + window
    engagement = learners.engagement0.copy()
    alive = np.ones(n, dtype=bool)
    churn_day = np.full(n, -1, dtype=np.int64)
    early = np.zeros(n, dtype=np.int64)
    recent = np.zeros(n, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    per_day: list[np.ndarray] = []
    for day in range(days):
        active = alive & (learners.first_day <= day)
        step = learners.drift + E_DAILY_SD * rng.standard_normal(n)
        moving = active & (learners.first_day < day)
        engagement = np.where(moving, np.clip(engagement + step, *E_BOUNDS), engagement)
        count = rng.poisson(BASE_RATE * day_weight[day] * np.exp(engagement)) * active
        early += count * (day < early_end)
        if day >= days - window:
            recent += count
        who = np.flatnonzero(count)
        last[who] = day
        per_day.append(np.repeat(who, count[who]))
        churn = active & (rng.random(n) < churn_hazard(engagement))
        alive &= ~churn
        churn_day[churn] = day
    days_inactive = np.where(last >= 0, days - 1 - last, np.maximum(days - learners.first_day, 0))
    return History(
        engagement=engagement,
        alive=alive,
        churn_day=churn_day,
        early_sessions=early,
        recent_sessions=recent,
        days_inactive=days_inactive,
        session_learner=np.concatenate(per_day),
        session_day=np.repeat(np.arange(days), [len(p) for p in per_day]),
    )


def _session_columns(
    rng: np.random.Generator,
    config: WorldConfig,
    learners: Learners,
    history: History,
    catalogue: Catalogue,
) -> dict[str, np.ndarray]:
    """Session rows (ids from 0 within the chunk): seasonal hours, one of the learner's
    courses, log-normal minutes and Poisson lessons; sorted by learner and time."""
    who, day = history.session_learner, history.session_day
    m = len(who)
    hour = sample_hours(rng, m, HOUR_WEIGHTS if config.realism == "v2" else None)
    offset = day * US_PER_DAY + hour * US_PER_HOUR + rng.integers(0, US_PER_HOUR, m)
    slot = (rng.random(m) * learners.n_courses[who]).astype(np.int64)
    course = learners.courses[who, slot]
    minutes = np.maximum(np.round(rng.lognormal(np.log(learners.study_minutes[who]), 0.5), 1), 1.0)
    lessons = rng.poisson(minutes / catalogue.lesson_minutes[course])
    order = np.lexsort((offset, who))
    return {
        "session_id": np.arange(m, dtype=np.int64),
        "learner_id": learners.ids[who][order],
        "course_id": course[order].astype(np.int64),
        "started_at": to_timestamps(config.history_start, offset[order]),
        "minutes": minutes[order],
        "lessons_completed": lessons[order].astype(np.int64),
    }


def effect_model(
    config: WorldConfig, learners: Learners, history: History, arm_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline retention p0 and the (n, arms) matrix p_a = clip(p0 + tau_a, 0.001, 0.999).

    p0 of an active learner is the survival of the churn hazard along their projected
    engagement (e_T + drift * k, k = 1..window); a churned learner comes back with a small
    probability that fades with the time since churn. With room = 4 p0 (1 - p0) (largest on
    the fence), reach = 1 if active else CHURNED_REACH, autonomy a, sociability s and
    contact aversion c (0 for most learners), tau_a = LIFT_a reach room fit_a - INTRUSIVENESS_a c:

    - nudge_email: fit = 1
    - tutor_call: fit = (1 - a)^2 GOAL_FIT[goal], and a further - AUTONOMY_PENALTY a^3
      (self-directed learners resent being coached)
    - peer_cohort_invite: fit = s^1.5
    """
    alive = history.alive
    log_survival = np.zeros(len(alive))
    for k in range(1, config.outcome_window_days + 1):
        path = np.clip(history.engagement + learners.drift * k, *E_BOUNDS)
        log_survival += np.log1p(-churn_hazard(path))
    since_churn = config.days - 1 - history.churn_day
    comeback = REACT_BASE + REACT_SPAN * np.exp(-since_churn / REACT_DECAY)
    baseline = np.where(alive, np.exp(log_survival), comeback)

    room = 4.0 * baseline * (1.0 - baseline) * np.where(alive, 1.0, CHURNED_REACH)
    a, s = learners.autonomy, learners.sociability
    fit = {
        "nudge_email": np.ones_like(baseline),
        "tutor_call": (1.0 - a) ** 2 * GOAL_FIT[learners.goal],
        "peer_cohort_invite": s**1.5,
    }
    effects = {
        name: LIFT[name] * room * fit[name] - INTRUSIVENESS[name] * learners.aversion
        for name in KNOWN_ARMS[1:]
    }
    effects["tutor_call"] -= AUTONOMY_PENALTY * a**3
    effects[KNOWN_ARMS[0]] = np.zeros_like(baseline)
    probability = np.column_stack(
        [np.clip(baseline + effects[name], 0.001, 0.999) for name in arm_names]
    )
    return baseline, probability


def potential_outcomes(
    rng: np.random.Generator,
    config: WorldConfig,
    learners: Learners,
    history: History,
    arm_names: Sequence[str],
) -> Potential:
    """Retention and revenue under every arm with common random numbers: one uniform and
    one revenue draw per learner, shared by all arms, so arms differ only by the effect."""
    baseline, probability = effect_model(config, learners, history, arm_names)
    n = len(baseline)
    free = learners.plan == PLANS.index("free")
    list_revenue = PLAN_PRICE_USD[learners.plan] * learners.discount
    ads = rng.gamma(*ADS_GAMMA, size=n)
    extra_p = np.where(free, FREE_UPSELL[0], ADDON[0])
    extra_price = np.where(free, FREE_UPSELL[1], ADDON[1])
    uniform = rng.random(n)
    extra = rng.random(n) < extra_p
    if_retained = list_revenue + ads + extra * extra_price
    expected_if_retained = list_revenue + ADS_GAMMA[0] * ADS_GAMMA[1] + extra_p * extra_price
    retained = uniform[:, None] < probability
    return Potential(
        baseline=baseline,
        probability=probability,
        expected_revenue=probability * expected_if_retained[:, None],
        retained=retained,
        revenue=np.round(retained * if_retained[:, None], 2),
    )


def current_policy(
    plan: np.ndarray,
    early_sessions: np.ndarray,
    recent_sessions: np.ndarray,
    days_inactive: np.ndarray,
    arm_names: Sequence[str],
) -> np.ndarray:
    """Today's rule without uplift models, on observable behaviour only.

    Pro learners whose sessions in the last 14 days fell to at most 40% of their first
    14 days (with >= 4 sessions then) get a tutor call; everyone else inactive for 7+ days
    gets a nudge e-mail; the rest nothing. Arms missing from the campaign fall back to the
    e-mail, then to control. ``plan`` holds indices into PLANS.
    """
    control = arm_names[0]
    email = "nudge_email" if "nudge_email" in arm_names else control
    call = "tutor_call" if "tutor_call" in arm_names else email
    dropped = (
        (plan == PLANS.index("pro"))
        & (early_sessions >= MIN_EARLY_SESSIONS_FOR_CALL)
        & (recent_sessions <= (1.0 - DROP_SHARE_FOR_CALL) * early_sessions)
    )
    inactive = days_inactive >= INACTIVE_DAYS_FOR_EMAIL
    return np.where(dropped, call, np.where(inactive, email, control)).astype(object)


def _write_campaign(
    config: WorldConfig,
    sink: TableSink,
    arm_names: Sequence[str],
    learners: Learners,
    history: History,
    potential: Potential,
    arm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Write assignments, observed outcomes, ground truth and the current policy of a chunk;
    return the unit types and the current policy's arms."""
    ids = learners.ids
    assigned = np.asarray(arm_names, dtype=object)[arm]
    sink.write(
        "assignments",
        {
            "unit_id": ids,
            "arm": assigned,
            "assigned_at": np.full(len(ids), np.datetime64(config.decision_time, "us")),
        },
    )
    sink.write(
        "outcomes",
        {
            "unit_id": ids,
            "arm": assigned,
            "retained_30d": observed(potential.retained, arm).astype(np.int64),
            "revenue_usd": observed(potential.revenue, arm),
        },
    )
    probability = potential.probability
    unit_type = classify_units(probability[:, 0], probability[:, 1:] - probability[:, :1])
    sink.write(
        "ground_truth",
        ground_truth_columns(
            ids,
            arm_names,
            probability,
            potential.expected_revenue,
            potential.retained,
            potential.revenue,
            unit_type,
        ),
    )
    policy = current_policy(
        learners.plan,
        history.early_sessions,
        history.recent_sessions,
        history.days_inactive,
        arm_names,
    )
    sink.write("current_policy", {"unit_id": ids, "arm": policy})
    return unit_type, policy
