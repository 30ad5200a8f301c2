"""Contracts of the fintech world's raw tables (customers, cards, merchants, payments, outcomes)."""

from __future__ import annotations

from liftwise.contracts.base import ColumnSpec, TableContract

SEGMENTS = ("mass", "affluent", "premium", "student", "sme")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
REGIONS = ("hanoi", "hcmc", "danang", "north_other", "central_other", "south_other")
INCOME_BANDS = ("low", "lower_mid", "upper_mid", "high")
CARD_TYPES = ("debit", "credit_classic", "credit_gold", "credit_platinum")
CATEGORIES = (
    "grocery",
    "dining",
    "fuel",
    "travel",
    "electronics",
    "fashion",
    "utilities",
    "entertainment",
    "health",
    "ecommerce",
)
CITIES = ("hanoi", "hcmc", "danang", "haiphong", "cantho", "nhatrang", "online")

CUSTOMERS = TableContract(
    name="customers",
    version="1",
    description="Bank customers at the decision date.",
    key=("customer_id",),
    columns=(
        ColumnSpec("customer_id", "int", "Customer id (= campaign unit_id).", ge=0, unique=True),
        ColumnSpec("segment", "str", "Commercial segment.", allowed=SEGMENTS),
        ColumnSpec("age_band", "str", "Age band in years.", allowed=AGE_BANDS),
        ColumnSpec("region", "str", "Home region.", allowed=REGIONS),
        ColumnSpec("tenure_months", "int", "Months since account opening.", ge=0, le=600),
        ColumnSpec("income_band", "str", "Declared income band.", allowed=INCOME_BANDS),
    ),
)

CARDS = TableContract(
    name="cards",
    version="1",
    description="Payment cards, one to three per customer.",
    key=("card_id",),
    columns=(
        ColumnSpec("card_id", "int", "Card id.", ge=0, unique=True),
        ColumnSpec("customer_id", "int", "Owner (customers.customer_id).", ge=0),
        ColumnSpec("card_type", "str", "Product.", allowed=CARD_TYPES),
        ColumnSpec("issued_at", "timestamp", "Issue timestamp (before the history starts)."),
    ),
)

MERCHANTS = TableContract(
    name="merchants",
    version="1",
    description="Merchants; popularity follows a Zipf law over popularity_rank.",
    key=("merchant_id",),
    columns=(
        ColumnSpec("merchant_id", "int", "Merchant id.", ge=0, unique=True),
        ColumnSpec("category", "str", "Merchant category.", allowed=CATEGORIES),
        ColumnSpec("city", "str", "City (or online).", allowed=CITIES),
        ColumnSpec("popularity_rank", "int", "1 = most popular (ground truth).", ge=1),
    ),
)

PAYMENTS = TableContract(
    name="payments",
    version="1",
    description="Card payments in the history window before the decision date (VND).",
    key=("payment_id",),
    columns=(
        ColumnSpec("payment_id", "int", "Payment id.", ge=0, unique=True),
        ColumnSpec("customer_id", "int", "Payer (customers.customer_id).", ge=0),
        ColumnSpec("card_id", "int", "Card used (cards.card_id, owned by the payer).", ge=0),
        ColumnSpec("merchant_id", "int", "Merchant (merchants.merchant_id).", ge=0),
        ColumnSpec("ts", "timestamp", "Local time of the payment."),
        ColumnSpec("amount_vnd", "int", "Amount in Vietnamese dong.", ge=1),
    ),
)

OUTCOMES = TableContract(
    name="outcomes",
    version="1",
    description="Observed outcomes in the window after the campaign, under the assigned arm.",
    key=("unit_id",),
    columns=(
        ColumnSpec("unit_id", "int", "Customer id.", ge=0, unique=True),
        ColumnSpec("arm", "str", "Assigned arm."),
        ColumnSpec("converted", "int", "1 if the customer made a qualifying spend.", ge=0, le=1),
        ColumnSpec("spend_vnd", "float", "Qualifying spend in the window.", ge=0),
        ColumnSpec("margin_vnd", "float", "Bank margin earned on that spend.", ge=0),
    ),
)

FINTECH_CONTRACTS = {c.name: c for c in (CUSTOMERS, CARDS, MERCHANTS, PAYMENTS, OUTCOMES)}
