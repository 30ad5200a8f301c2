"""Data contracts: versioned schemas for every table and event, and the validators.

pandera guards tables (vectorised column checks over millions of rows); pydantic guards
single records (events, API payloads, configuration). docs/contracts.md says why.
"""

from liftwise.contracts.base import ColumnSpec, TableContract, Violation, violations_from_frame
from liftwise.contracts.campaign import ARMS, ASSIGNMENTS, CAMPAIGN_CONTRACTS, GROUND_TRUTH, POLICY
from liftwise.contracts.fintech import FINTECH_CONTRACTS
from liftwise.contracts.learning import LEARNING_CONTRACTS

WORLD_CONTRACTS: dict[str, dict[str, TableContract]] = {
    "fintech": {**FINTECH_CONTRACTS, **CAMPAIGN_CONTRACTS},
    "learning": {**LEARNING_CONTRACTS, **CAMPAIGN_CONTRACTS},
}


def world_contracts(world: str) -> dict[str, TableContract]:
    """The contracts of every table a world writes (raw tables plus campaign tables)."""
    from liftwise.errors import UserError

    try:
        return WORLD_CONTRACTS[world]
    except KeyError:
        raise UserError(
            f"unknown world '{world}' (known: {', '.join(sorted(WORLD_CONTRACTS))})"
        ) from None


__all__ = [
    "ARMS",
    "ASSIGNMENTS",
    "CAMPAIGN_CONTRACTS",
    "GROUND_TRUTH",
    "POLICY",
    "WORLD_CONTRACTS",
    "ColumnSpec",
    "TableContract",
    "Violation",
    "violations_from_frame",
    "world_contracts",
]
