"""Spreadsheet cells that would run as formulas: escaped on export, refused on import."""

# A cell starting with one of these is run as a formula (or DDE) by Excel,
# LibreOffice or Google Sheets; the OWASP "CSV injection" list.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(value: str) -> bool:
    """Return True when a spreadsheet would treat the text as a formula."""
    return bool(value) and value[0] in FORMULA_TRIGGERS


def escape_formula(value: str) -> str:
    """Prefix a text cell that a spreadsheet would treat as a formula with a single quote."""
    if looks_like_formula(value):
        return "'" + value
    return value
