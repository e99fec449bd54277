"""How the site writes dates for people (English): "29 Nov 2026" and "29 Nov 2026, 13:30 CET".

One format everywhere: Django's own renderings (read-only fields, list columns
of date fields, ``{{ value }}``, ``|date:"DATETIME_FORMAT"``) read it from here,
and ``backoffice.dates`` renders it in code. Times name their zone (``T``).
Exports keep ISO 8601 (``backoffice/exports.py``); date inputs are unchanged.
"""

DATE_FORMAT = "j M Y"
SHORT_DATE_FORMAT = DATE_FORMAT
TIME_FORMAT = "H:i T"
DATETIME_FORMAT = "j M Y, H:i T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
MONTH_DAY_FORMAT = "j M"
