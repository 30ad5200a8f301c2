"""Contracts of the learning world's raw tables (learners, courses, sessions, outcomes)."""

from __future__ import annotations

from liftwise.contracts.base import ColumnSpec, TableContract

COUNTRIES = ("us", "in", "gb", "br", "de", "ng", "vn", "id", "mx", "other")
PLANS = ("free", "plus", "pro")
AGE_BANDS = ("13-17", "18-24", "25-34", "35-44", "45-54", "55+")
GOALS = ("career", "exam", "school", "hobby")
COURSE_CATEGORIES = (
    "programming",
    "data_science",
    "languages",
    "business",
    "design",
    "exam_prep",
    "personal_development",
    "music",
)
DIFFICULTIES = ("beginner", "intermediate", "advanced")

LEARNERS = TableContract(
    name="learners",
    version="1",
    description="Learners signed up before the decision date (every one is a campaign unit).",
    key=("learner_id",),
    columns=(
        ColumnSpec("learner_id", "int", "Learner id (= campaign unit_id).", ge=0, unique=True),
        ColumnSpec(
            "country", "str", "Country of residence (ISO code or other).", allowed=COUNTRIES
        ),
        ColumnSpec("plan", "str", "Subscription plan at the decision date.", allowed=PLANS),
        ColumnSpec("age_band", "str", "Age band in years.", allowed=AGE_BANDS),
        ColumnSpec("goal", "str", "Learning goal stated at signup.", allowed=GOALS),
        ColumnSpec("signup_at", "timestamp", "Signup timestamp (before the decision date)."),
        ColumnSpec("tenure_days", "int", "Whole days from signup to the decision date.", ge=0),
    ),
)

COURSES = TableContract(
    name="courses",
    version="1",
    description="Course catalogue; enrolments follow a Zipf law over popularity_rank.",
    key=("course_id",),
    columns=(
        ColumnSpec("course_id", "int", "Course id.", ge=0, unique=True),
        ColumnSpec("category", "str", "Subject area.", allowed=COURSE_CATEGORIES),
        ColumnSpec("difficulty", "str", "Level.", allowed=DIFFICULTIES),
        ColumnSpec("length_lessons", "int", "Number of lessons in the course.", ge=1),
        ColumnSpec("popularity_rank", "int", "1 = most popular (ground truth).", ge=1),
    ),
)

SESSIONS = TableContract(
    name="sessions",
    version="1",
    description="Learning sessions in the history window before the decision date.",
    key=("session_id",),
    columns=(
        ColumnSpec("session_id", "int", "Session id.", ge=0, unique=True),
        ColumnSpec("learner_id", "int", "Learner (learners.learner_id).", ge=0),
        ColumnSpec("course_id", "int", "Course studied (courses.course_id).", ge=0),
        ColumnSpec("started_at", "timestamp", "Local start time of the session."),
        ColumnSpec("minutes", "float", "Session length in minutes (at least one).", ge=1.0),
        ColumnSpec("lessons_completed", "int", "Lessons finished in the session.", ge=0),
    ),
)

OUTCOMES = TableContract(
    name="outcomes",
    version="1",
    description="Observed outcomes in the window after the campaign, under the assigned arm.",
    key=("unit_id",),
    columns=(
        ColumnSpec("unit_id", "int", "Learner id.", ge=0, unique=True),
        ColumnSpec("arm", "str", "Assigned arm."),
        ColumnSpec(
            "retained_30d",
            "int",
            "1 if the learner is still active at the end of the outcome window.",
            ge=0,
            le=1,
        ),
        ColumnSpec("revenue_usd", "float", "Revenue from the learner in the window (USD).", ge=0),
    ),
)

LEARNING_CONTRACTS = {c.name: c for c in (LEARNERS, COURSES, SESSIONS, OUTCOMES)}
