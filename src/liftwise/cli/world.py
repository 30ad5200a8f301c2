"""Commands over synthetic worlds: simulate, validate, describe, quickstart."""
