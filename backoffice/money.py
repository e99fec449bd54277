"""Money helpers: currency exponents and Decimal <-> minor-unit conversion.

The one place that knows how many decimal places a currency has.
"""

from decimal import Decimal

# ISO 4217 currencies whose minor unit is not 2 (Stripe's zero- and
# three-decimal lists); every other currency has 2 decimal places.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF",
        "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Stripe takes these in two-decimal minor units, but only whole amounts (the
# minor part must be 00): ISK has no smaller coin in use.
WHOLE_AMOUNT_CURRENCIES = frozenset({"ISK"})


def currency_exponent(currency: str) -> int:
    """Return how many decimal places the currency's minor unit has."""
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def quantum(currency: str) -> Decimal:
    """Return the smallest amount we accept in the currency, e.g. Decimal('0.01').

    Amounts are stored with 2 decimal places; Stripe also requires
    three-decimal currencies to be charged in multiples of 10 minor units,
    so 2 places is the finest step for every currency. ISK is charged in whole
    krónur although Stripe counts it in hundredths.
    """
    if currency.upper() in WHOLE_AMOUNT_CURRENCIES:
        return Decimal(1)
    return Decimal(1).scaleb(-min(currency_exponent(currency), 2))


def has_valid_precision(amount: Decimal, currency: str) -> bool:
    """Return True when ``amount`` has no more decimals than the currency allows."""
    return amount == amount.quantize(quantum(currency))


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Convert a Decimal amount to the currency's minor unit (cents, yen, ...)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    exponent = currency_exponent(currency)
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount} has more decimal places than {currency.upper()} allows")
    return int(minor)


def from_minor_units(minor: int, currency: str) -> Decimal:
    """Convert an integer amount in minor units to an exact Decimal."""
    return Decimal(int(minor)).scaleb(-currency_exponent(currency))


def format_amount(amount: Decimal, currency: str) -> str:
    """Format an amount for people: '50.00 USD', '5000 JPY'."""
    return f"{amount.quantize(quantum(currency)):,} {currency.upper()}"
