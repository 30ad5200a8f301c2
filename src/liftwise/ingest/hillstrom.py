"""The Hillstrom (MineThatData 2008) e-mail experiment as an :class:`ExperimentFrame`.

A real three-arm randomised test with known arm means, so it anchors every estimator in
something other than simulated data. Loading is the generic loader with a fixed column
mapping; the only Hillstrom-specific step turns ``history_segment`` into its bucket number.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import pandas as pd

from liftwise.contracts.experiment import ARM, UNIT_ID, ExperimentFrame
from liftwise.errors import UserError
from liftwise.ingest.experiment import load_experiment
from liftwise.io import sha256_file

HILLSTROM_SHA256 = "ff9e59285e9dc3f5fa3e0975419e6631ea5bdccd65d818991473d2367e02979c"
TREATMENT = "segment"
CONTROL = "No E-Mail"
ARMS = (CONTROL, "Mens E-Mail", "Womens E-Mail")
OUTCOMES = ("visit", "conversion", "spend")
ORDINAL = "history_segment"
# In file order; zip_code and channel are one-hot encoded by the generic loader.
FEATURES = ("recency", ORDINAL, "history", "mens", "womens", "zip_code", "newbie", "channel")
_BUCKET = re.compile(r"\s*(\d+)\)")


def load_hillstrom(path: str | Path, *, verify_checksum: bool = True) -> ExperimentFrame:
    """Load the Hillstrom CSV: control ``No E-Mail``, both e-mail arms kept as treatments.

    ``history_segment`` becomes its bucket number (``2) $100 - $200`` -> 2). With
    ``verify_checksum`` a file whose sha256 differs from the published one only warns:
    it may be a legitimate sample or re-export, but its arm means will not match.
    """
    frame = load_experiment(
        path, treatment=TREATMENT, control=CONTROL, outcomes=OUTCOMES, features=FEATURES
    )
    unexpected = sorted(set(frame.arms) - set(ARMS))
    if unexpected:
        raise UserError(
            f"unexpected arm labels {', '.join(unexpected)} (Hillstrom arms: {', '.join(ARMS)})",
            file=frame.source,
            column=TREATMENT,
        )
    if verify_checksum:
        digest = sha256_file(path)
        if digest != HILLSTROM_SHA256:
            warnings.warn(
                f"{path}: sha256 {digest[:12]}... differs from the published Hillstrom file "
                f"({HILLSTROM_SHA256[:12]}...); its arm means may not match the known ones",
                UserWarning,
                stacklevel=2,
            )
    return _one_hot_to_ordinal(frame, ORDINAL).validate()


def _one_hot_to_ordinal(frame: ExperimentFrame, column: str) -> ExperimentFrame:
    """Replace the one-hot block ``column=<n) ...>`` by one float column holding ``n``.

    Works from the loader's one-hot columns (exactly one is 1 per row), so the raw text
    never has to be read twice.
    """
    prefix = f"{column}="
    block = [name for name in frame.features if name.startswith(prefix)]
    if not block:  # already numeric in this file: nothing to decode
        return frame
    ordinal = pd.Series(0.0, index=frame.data.index)
    for name in block:
        level = name[len(prefix) :]
        match = _BUCKET.match(level)
        if match is None:
            first = int(frame.data.index[frame.data[name] == 1.0][0])
            raise UserError(
                f"cannot read the bucket number of '{level}' (expected e.g. '2) $100 - $200')",
                file=frame.source,
                column=column,
                row=first,
            )
        ordinal += frame.data[name] * float(match.group(1))
    at = frame.features.index(block[0])
    features = (*frame.features[:at], column, *(f for f in frame.features[at:] if f not in block))
    columns = {name: frame.data[name] for name in (UNIT_ID, ARM, *frame.outcomes)}
    columns.update({name: ordinal if name == column else frame.data[name] for name in features})
    return dataclasses.replace(frame, data=pd.DataFrame(columns), features=features)
